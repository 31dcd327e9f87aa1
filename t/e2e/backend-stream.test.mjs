// Issue 13, item 4 and Tests (a): an SDK backend with no event store sends
// log messages that belong to no request; the SDK puts them on the
// session's standalone GET stream. With `mcp_session_stream on` nginx
// answers the client's GET itself and holds the backend's GET stream, so
// the messages reach the SDK client, and across a cut of the client's
// stream (a relay that drops every connection for 1.5 s) every message
// arrives once, in order: nginx recorded what came during the outage and
// replays it on the client's GET + Last-Event-ID. Against the bare backend
// the messages sent during the outage are lost.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { startNginx, pollUntil, badLogLines } from "./harness.mjs";
import { startRelay } from "./cut_relay.mjs";
import { startStepsBackend } from "./steps_backend.mjs";

const reconnectionOptions = { initialReconnectionDelay: 100, maxReconnectionDelay: 400, reconnectionDelayGrowFactor: 1.5, maxRetries: 20 };

let steps;
let edge;
const relays = [];

before(async () => {
  steps = await startStepsBackend();
  edge = await startNginx({ name: "backend-stream", backendPort: steps.port, stream: true });
});

after(async () => {
  for (const relay of relays) await relay.close();
  if (edge) await edge.stop();
  if (steps) await steps.stop();
});

// Connects to `url` and collects the log messages the client is sent.
async function connect(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { reconnectionOptions });
  const client = new Client({ name: "ngx-mcp-session-e2e-backend-stream", version: "1.0.0" });
  const messages = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { messages.push(n.params.data); });
  await client.connect(transport);
  return { client, transport, messages };
}

// The backend's GET streams for the session so far.
const getsOf = (sessionId) => steps.log().split("\n").filter((line) => line === `get session ${sessionId}`).length;
const sentBy = (sessionId) => steps.log().split("\n").filter((line) => line.startsWith("announce ") && line.endsWith(`session ${sessionId}`)).length;

async function announce(session, count, intervalMs) {
  // The client opens its GET stream after initialized; the messages need
  // the backend's stream to be open (through nginx: held by nginx).
  await pollUntil("the backend's GET stream", () => getsOf(session.transport.sessionId) >= 1);
  const result = await session.client.callTool({ name: "announce", arguments: { count, intervalMs } });
  assert.equal(result.content[0].text, `announcing ${count}`);
}

async function close(session) {
  try { await session.transport.terminateSession(); } catch { /* gone already */ }
  await session.client.close();
}

test("through nginx: an SDK backend's standalone-stream log messages reach the SDK client, 4 of 4", async () => {
  const session = await connect(edge.url);
  await announce(session, 4, 100);
  await pollUntil("4 messages", () => session.messages.length >= 4);
  assert.deepEqual(session.messages, ["announce 1", "announce 2", "announce 3", "announce 4"]);
  assert.equal(getsOf(session.transport.sessionId), 1, "nginx opened the backend's GET stream once");
  await close(session);
  assert.deepEqual(badLogLines(edge.errorLog()), []);
});

async function announceAcrossCut(relay) {
  const session = await connect(relay.url);
  const sessionId = session.transport.sessionId;
  await announce(session, 6, 400);
  await pollUntil("message 2", () => session.messages.length >= 2);
  relay.cut();
  await pollUntil("the backend to send all 6", () => sentBy(sessionId) === 6, { timeoutMs: 10000 });
  // Whatever the client will get has arrived a little after the last send.
  await pollUntil("the client to catch up", () => session.messages.length >= 6, { timeoutMs: 4000 }).catch(() => {});
  const seen = [...session.messages];
  await close(session);
  return { sessionId, seen };
}

test("through nginx: across a cut of the client's stream every message arrives once, in order", async () => {
  const relay = await startRelay(Number(new URL(edge.url).port));
  relays.push(relay);
  const { sessionId, seen } = await announceAcrossCut(relay);
  assert.ok(relay.stats.refused > 0, "the client tried to reconnect during the outage");
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6].map((i) => `announce ${i}`));
  assert.equal(getsOf(sessionId), 1, "the backend's one GET stream was held through the outage");
  assert.match(edge.accessLog(), /GET 200 last-event-id=\[\d+\]/, "the client resumed with nginx's event id");
  assert.deepEqual(badLogLines(edge.errorLog()), []);
});

test("bare backend: the messages sent during the same cut are lost", async () => {
  const relay = await startRelay(steps.port);
  relays.push(relay);
  const { sessionId, seen } = await announceAcrossCut(relay);
  assert.ok(getsOf(sessionId) >= 2, "the client's GET stream reached the backend again after the outage");
  assert.ok(seen.length < 6, `the bare backend lost messages: ${JSON.stringify(seen)}`);
  assert.deepEqual(seen.slice(0, 2), ["announce 1", "announce 2"]);
});
