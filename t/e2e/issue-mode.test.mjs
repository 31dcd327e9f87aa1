// Issue mode with the official SDK client: nginx makes the session ids;
// server-everything's own ids never reach the client. Traffic declaring
// the sessionless 2026-07-28 revision passes through untouched.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startBackend, startNginx, pollUntil, badLogLines } from "./harness.mjs";

const uuidV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
let backend;
let edge;

before(async () => {
  backend = await startBackend();
  edge = await startNginx({ name: "issue", backendPort: backend.port, mode: "issue" });
});

after(async () => {
  if (edge) await edge.stop();
  if (backend) await backend.stop();
});

test("the SDK client only ever sees nginx's session ids", async () => {
  const transport = new StreamableHTTPClientTransport(new URL(edge.url));
  const client = new Client({ name: "ngx-mcp-session-e2e-issue", version: "1.0.0" });
  await client.connect(transport);

  const clientId = transport.sessionId;
  assert.match(clientId, uuidV7, "nginx's UUIDv7");
  const backendIds = await pollUntil("the backend's own session id", () => backend.sessionIds().length > 0 && backend.sessionIds());
  assert.ok(!backendIds.includes(clientId), `backend ids ${backendIds} differ from the client's ${clientId}`);

  const { tools } = await client.listTools();
  assert.ok(tools.some((tool) => tool.name === "echo"));
  const echo = await client.callTool({ name: "echo", arguments: { message: "issued" } });
  assert.equal(echo.content[0].text, "Echo: issued");
  assert.equal(transport.sessionId, clientId, "every answer carried nginx's id");

  await transport.terminateSession();
  await client.close();
  const gone = await fetch(edge.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": clientId },
    body: JSON.stringify({ jsonrpc: "2.0", id: 8, method: "tools/list" }),
  });
  assert.equal(gone.status, 404);
  assert.equal((await gone.json()).error.data.error, "session_expired");
  assert.deepEqual(badLogLines(edge.errorLog()), []);
});

test("a request declaring 2026-07-28 passes through: no session id made, none demanded", async () => {
  const response = await fetch(edge.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": "tools/list",
    },
    body: JSON.stringify({
      jsonrpc: "2.0", id: 1, method: "tools/list",
      params: { _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28" } },
    }),
  });
  const body = await response.text();
  // server-everything speaks only the session era, so it answers this with
  // its own 400; what matters here is that nginx neither answered nor
  // added anything (t/006 shows the same with a backend that accepts it).
  assert.equal(response.headers.get("mcp-session-id"), null, "nginx made no session");
  assert.ok(!body.includes("initialize first") && !body.includes("re-initialize"), `not nginx's error: ${body}`);
  // nginx writes the access-log line after the response has gone out, so
  // the line may land a moment after fetch() returns.
  await pollUntil("the access-log line of the 2026-07-28 request",
    () => /POST \d+ last-event-id=\[-\] none/.test(edge.accessLog()));
});
