// The plumbing the SDK's own stateful examples use, shared by the SDK
// servers written for the tests: one Streamable HTTP transport per
// session, kept in process memory, made by an initialize.
import { randomUUID } from "node:crypto";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";

// The JSON body of a request (undefined when empty).
export function readBody(req) {
  return new Promise((resolve, reject) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => { text += chunk; });
    req.on("end", () => {
      try { resolve(text ? JSON.parse(text) : undefined); } catch (err) { reject(err); }
    });
    req.on("error", reject);
  });
}

// Hands a request to its session's transport, or makes one for an
// initialize; anything else without a known session goes to
// `refuse(res, sessionId)`. `createServer(transport)` gives the McpServer.
export function sessionHandler({ createServer, refuse }) {
  const transports = new Map();
  return async (req, res) => {
    const sessionId = req.headers["mcp-session-id"];
    const body = req.method === "POST" ? await readBody(req) : undefined;
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId || req.method !== "POST" || !isInitializeRequest(body)) {
        return refuse(res, sessionId);
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          console.log(`session ${id}`);
          transports.set(id, transport);
        },
      });
      transport.onclose = () => { if (transport.sessionId) transports.delete(transport.sessionId); };
      await createServer(transport).connect(transport);
    }
    if (req.method === "GET") console.log(`get session ${sessionId}`);  // the session's standalone stream
    await transport.handleRequest(req, res, body);
  };
}
