// The official TypeScript SDK client through nginx + ngx_mcp_session (learn
// mode, 2 workers) in front of the reference server-everything.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startBackend, startNginx, pollUntil, badLogLines } from "./harness.mjs";

let backend;
const edges = [];

before(async () => {
  backend = await startBackend();
});

after(async () => {
  for (const edge of edges) await edge.stop();
  if (backend) await backend.stop();
});

async function connect(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: "ngx-mcp-session-e2e", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

async function postWithSession(url, sessionId) {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": sessionId,
      "mcp-protocol-version": "2025-06-18",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list", params: {} }),
  });
  return { status: response.status, type: response.headers.get("content-type"), body: await response.text() };
}

function assertReinitialize404(reply, sessionId) {
  assert.equal(reply.status, 404);
  assert.match(reply.type, /^application\/json/);
  const body = JSON.parse(reply.body);
  assert.equal(body.jsonrpc, "2.0");
  assert.equal(body.id, null);
  assert.equal(body.error.code, -32001);
  assert.equal(body.error.data.error, "session_expired");
  assert.equal(body.error.data.retry, "re-initialize");
  assert.ok(body.error.message.includes(`\`${sessionId}\``), body.error.message);
}

test("a full SDK session through nginx, then nginx's 404 for the ended and for a random id", async () => {
  const edge = await startNginx({ name: "session", backendPort: backend.port });
  edges.push(edge);
  const { client, transport } = await connect(edge.url);

  const sessionId = transport.sessionId;
  assert.match(sessionId, /^[\x21-\x7e]+$/, "the backend's session id reached the client");

  const { tools } = await client.listTools();
  assert.ok(tools.some((tool) => tool.name === "echo"), "server-everything lists its echo tool");

  const result = await client.callTool({ name: "echo", arguments: { message: "through nginx" } });
  assert.equal(result.content[0].text, "Echo: through nginx");

  await transport.terminateSession();
  await client.close();

  assertReinitialize404(await postWithSession(edge.url, sessionId), sessionId);
  const stranger = randomUUID();
  assertReinitialize404(await postWithSession(edge.url, stranger), stranger);

  assert.deepEqual(badLogLines(edge.errorLog()), []);
});

test("a session that expires at the edge is replaced by a fresh initialize", async () => {
  const edge = await startNginx({ name: "expiry", backendPort: backend.port, zone: "max_lifetime=5s" });
  edges.push(edge);
  const first = await connect(edge.url);
  const oldId = first.transport.sessionId;
  const echo = await first.client.callTool({ name: "echo", arguments: { message: "before" } });
  assert.equal(echo.content[0].text, "Echo: before");

  // The TypeScript client surfaces the 404 as an error and does not
  // re-initialize by itself; poll until the edge has expired the session.
  const failure = await pollUntil("the session to expire at the edge", async () => {
    try {
      await first.client.listTools();
      return false;
    } catch (error) {
      return error;
    }
  }, { timeoutMs: 20000, intervalMs: 200 });
  assert.ok(failure.code === 404 || /404/.test(String(failure.message)), String(failure));
  assert.match(String(failure.message), /session_expired/);
  await first.client.close();

  // The documented recovery: a new transport, a new initialize.
  const second = await connect(edge.url);
  assert.notEqual(second.transport.sessionId, oldId);
  const again = await second.client.callTool({ name: "echo", arguments: { message: "after" } });
  assert.equal(again.content[0].text, "Echo: after");
  await second.transport.terminateSession();
  await second.client.close();

  assert.deepEqual(badLogLines(edge.errorLog()), []);
});
