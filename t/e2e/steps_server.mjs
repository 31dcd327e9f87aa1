// An MCP server as people write it with the official SDK: McpServer +
// StreamableHTTPServerTransport, sessions in process memory, NO event
// store (so it sends no SSE ids, no priming event, and cannot replay).
// Run as `PORT=n node steps_server.mjs`; prints "listening PORT" once it
// accepts, and one line per progress step and per finished call.
//
// Tool `steps`: sends `count` (6) notifications/progress with the request's
// progressToken, `intervalMs` (150) apart, then returns "steps done: N".
// Tool `announce`: returns at once, then sends `count` (4) log messages
// ("announce N"), `intervalMs` (200) apart, that belong to no request: the
// SDK sends them on the session's standalone GET stream, or drops them
// when no GET stream is open (it has no event store to keep them in).
// "error session ID: ..." lines are what the SDK reports, e.g. "Failed to
// send response" when the client's connection is gone when the result is.
import http from "node:http";
import { z } from "zod";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { sessionHandler } from "./sdk_sessions.mjs";

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function createServer(transport) {
  const server = new McpServer({ name: "ngx-mcp-session-e2e-steps", version: "1.0.0" },
                               { capabilities: { logging: {} } });
  server.server.onerror = (err) => console.log(`error session ${transport.sessionId}: ${err.message}`);
  server.registerTool("steps", {
    description: "Sends progress notifications, then returns",
    inputSchema: { count: z.number().int().min(1).default(6), intervalMs: z.number().int().min(0).default(150) },
  }, async ({ count = 6, intervalMs = 150 }, extra) => {
    const progressToken = extra._meta?.progressToken;
    for (let i = 1; i <= count; i++) {
      await pause(intervalMs);
      if (progressToken !== undefined) {
        await extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress: i, total: count } });
      }
      console.log(`progress ${i} session ${extra.sessionId}`);
    }
    console.log(`done session ${extra.sessionId}`);
    return { content: [{ type: "text", text: `steps done: ${count}` }] };
  });
  server.registerTool("announce", {
    description: "Sends log messages on the standalone stream after returning",
    inputSchema: { count: z.number().int().min(1).default(4), intervalMs: z.number().int().min(0).default(200) },
  }, async ({ count = 4, intervalMs = 200 }, extra) => {
    (async () => {
      for (let i = 1; i <= count; i++) {
        await pause(intervalMs);
        await server.server.sendLoggingMessage({ level: "info", data: `announce ${i}` });
        console.log(`announce ${i} session ${extra.sessionId}`);
      }
    })().catch((err) => console.log(`error session ${extra.sessionId}: ${err.message}`));
    return { content: [{ type: "text", text: `announcing ${count}` }] };
  });
  return server;
}

function reject(res, status, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
}

const handle = sessionHandler({
  createServer,
  refuse: (res, sessionId) =>
    reject(res, sessionId ? 404 : 400, sessionId ? "Session not found" : "Bad Request: No valid session ID provided"),
});

const httpServer = http.createServer(async (req, res) => {
  try {
    if (!req.url.startsWith("/mcp")) return reject(res, 404, "Not found");
    await handle(req, res);
  } catch (err) {
    console.log(`error ${err?.stack ?? err}`);
    if (!res.headersSent) reject(res, 500, "Internal server error");
  }
});

httpServer.listen(Number(process.env.PORT), "127.0.0.1", () => {
  console.log(`listening ${httpServer.address().port}`);
});
process.on("SIGTERM", () => {
  httpServer.closeAllConnections();
  httpServer.close(() => process.exit(0));
});
