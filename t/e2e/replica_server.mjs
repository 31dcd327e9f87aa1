// One replica of an MCP server written the way the SDK's stateful example
// is: McpServer + StreamableHTTPServerTransport, sessions only in this
// process's memory (a Map of session id -> transport). Several of them
// behind one nginx upstream are what issue 14 is about: a replica knows
// only the sessions it made, and forgets them all when it restarts.
// Run as `PORT=n node replica_server.mjs`; prints "listening PORT" once it
// accepts, "session ID" per session made and "unknown session ID" per
// request that named a session it does not have.
//
// Tool `whoami`: returns {"port": this replica's port, "calls": how many
// times this session has called whoami, "pid": this process}.
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { sessionHandler } from "./sdk_sessions.mjs";

const port = Number(process.env.PORT);

function createServer() {
  const server = new McpServer({ name: "ngx-mcp-session-e2e-replica", version: "1.0.0" });
  let calls = 0;  // one McpServer per session, so this counts one session's calls
  server.registerTool("whoami", {
    description: "Names the replica that serves this session and counts the session's calls",
  }, async () => {
    calls += 1;
    return { content: [{ type: "text", text: JSON.stringify({ port, calls, pid: process.pid }) }] };
  });
  return server;
}

// The SDK examples' answer to a request whose session this process does not know.
function noValidSession(res) {
  res.writeHead(400, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message: "Bad Request: No valid session ID provided" }, id: null }));
}

const handle = sessionHandler({
  createServer,
  refuse: (res, sessionId) => {
    if (sessionId) console.log(`unknown session ${sessionId}`);
    noValidSession(res);
  },
});

const httpServer = http.createServer(async (req, res) => {
  try {
    await handle(req, res);
  } catch (err) {
    console.log(`error ${err?.stack ?? err}`);
    if (!res.headersSent) {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32603, message: "Internal server error" }, id: null }));
    }
  }
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening ${httpServer.address().port}`);
});
process.on("SIGTERM", () => {
  httpServer.closeAllConnections();
  httpServer.close(() => process.exit(0));
});
