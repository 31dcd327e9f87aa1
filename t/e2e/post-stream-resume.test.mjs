// Issue 13, Tests (a) and (b): a tools/call whose POST stream is cut mid-call
// (a TCP relay drops every connection and refuses new ones for 1.5 s, right
// after the client has received progress step 2) completes through nginx
// with `mcp_session_stream on`, every progress notification once and in
// order: nginx gives the backend's events ids, keeps reading the backend's
// answer while the client is gone, and replays the rest on the client's
// GET + Last-Event-ID. Against the bare backend the same call never
// completes: an SDK backend without an event store sends no ids, so the
// client cannot resume at all; server-everything's in-memory store replays
// what it stored during the outage but maps the resumed stream wrongly, so
// the later steps and the result are lost.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ErrorCode } from "@modelcontextprotocol/sdk/types.js";
import { startBackend, startNginx, pollUntil, freePort, badLogLines } from "./harness.mjs";
import { startRelay } from "./cut_relay.mjs";
import { startStepsBackend } from "./steps_backend.mjs";

// Reconnect attempts 100..400 ms apart, 3.2 s in all: they outlast the outage.
const reconnectionOptions = { initialReconnectionDelay: 100, maxReconnectionDelay: 400, reconnectionDelayGrowFactor: 1.5, maxRetries: 10 };
// Without progress for this long the call fails (the bare backends' fate).
const CALL_TIMEOUT_MS = 5000;

// Connects through `relay`, calls the tool and cuts the relay once progress
// 2 has arrived. Resolves with what the client saw, whether the call
// completed or failed.
async function callAcrossCut(relay, tool) {
  const transport = new StreamableHTTPClientTransport(new URL(relay.url), { reconnectionOptions });
  const client = new Client({ name: "ngx-mcp-session-e2e-resume", version: "1.0.0" });
  const errors = [];
  client.onerror = (err) => errors.push(err.message);
  await client.connect(transport);
  const sessionId = transport.sessionId;
  const progress = [];
  let result = null;
  let error = null;
  try {
    result = await client.callTool(tool, undefined, {
      onprogress: ({ progress: step }) => {
        progress.push(step);
        if (step === 2 && relay.stats.cuts === 0) relay.cut();
      },
      resetTimeoutOnProgress: true,
      timeout: CALL_TIMEOUT_MS,
      maxTotalTimeout: 15000,
    });
  } catch (err) {
    error = err;
  }
  try { await transport.terminateSession(); } catch { /* the bare backends may have lost it */ }
  await client.close();
  return { sessionId, protocolVersion: transport.protocolVersion, progress, result, error, errors };
}

const describe = (seen) => JSON.stringify({ progress: seen.progress, error: seen.error?.message, errors: seen.errors });

let steps;
let everything;
let stepsEdge;
let everythingEdge;
const relays = [];

const portOf = (edge) => Number(new URL(edge.url).port);

async function relayTo(port) {
  const relay = await startRelay(port);
  relays.push(relay);
  return relay;
}

before(async () => {
  [steps, everything] = await Promise.all([startStepsBackend(), startBackend()]);
  stepsEdge = await startNginx({ name: "resume-steps", backendPort: steps.port, stream: true });
  everythingEdge = await startNginx({ name: "resume-everything", backendPort: everything.port, stream: true });
});

after(async () => {
  for (const relay of relays) await relay.close();
  for (const edge of [stepsEdge, everythingEdge]) if (edge) await edge.stop();
  for (const backend of [steps, everything]) if (backend) await backend.stop();
});

// 150 ms a step: the backend has answered in full before the client is back,
// so steps 3..6 and the result all come from nginx's ring.
const stepsTool = { name: "steps", arguments: { count: 6, intervalMs: 150 } };
// 0.8 s a step: the cut comes at 1.6 s, the client is back at about 3.2 s,
// so steps 3 and 4 fall into the outage (replayed) and 5, 6 and the result
// come live on the resumed stream.
const longRunning = { name: "trigger-long-running-operation", arguments: { duration: 4.8, steps: 6 } };

function assertResumedThroughNginx(seen, relay, edge) {
  assert.equal(seen.protocolVersion, "2025-11-25");
  assert.equal(relay.stats.cuts, 1);
  assert.ok(relay.stats.refused > 0, "the client tried to reconnect during the outage");
  assert.equal(seen.error, null, describe(seen));
  assert.deepEqual(seen.progress, [1, 2, 3, 4, 5, 6], describe(seen));
  // nginx saw the client leave mid-stream and went on reading the backend.
  assert.match(edge.errorLog(), /mcp_session: client left during a POST stream/);
}

test("SDK backend (no event store) through nginx: the call cut after progress 2 completes, every progress once, in order", async () => {
  const relay = await relayTo(portOf(stepsEdge));
  const seen = await callAcrossCut(relay, stepsTool);
  assertResumedThroughNginx(seen, relay, stepsEdge);
  assert.equal(seen.result.content[0].text, "steps done: 6");
  // nginx was still reading when the backend sent the rest and its result.
  assert.ok(steps.finished(seen.sessionId), "the backend ran the call to its end");
  assert.deepEqual(steps.errors(seen.sessionId), []);
  // The client came back with GET + the id nginx gave progress 2's event.
  await pollUntil("the resuming GET in the access log", () =>
    / GET 200 last-event-id=\[\d+\.\d+\] /.test(stepsEdge.accessLog()));
  assert.deepEqual(badLogLines(stepsEdge.errorLog()), []);
});

test("SDK backend (no event store) bare: the same cut call never completes", async (t) => {
  const relay = await relayTo(steps.port);
  const seen = await callAcrossCut(relay, stepsTool);
  t.diagnostic(`client saw ${describe(seen)}`);
  assert.equal(relay.stats.cuts, 1);
  // No ids on its events: the SDK client does not even try to resume the
  // POST stream, and the call times out with only the steps before the cut.
  assert.equal(seen.result, null, describe(seen));
  assert.equal(seen.error?.code, ErrorCode.RequestTimeout, describe(seen));
  assert.deepEqual(seen.progress, [1, 2]);
  // The backend could not send its result: the client's connection was gone.
  await pollUntil("the backend to end the call", () => steps.finished(seen.sessionId));
  assert.match(steps.errors(seen.sessionId).join("\n"), /Failed to send response: .*No connection established/);
});

test("server-everything through nginx: the long-running operation cut after progress 2 completes, every progress once, in order", async () => {
  const relay = await relayTo(portOf(everythingEdge));
  const seen = await callAcrossCut(relay, longRunning);
  assertResumedThroughNginx(seen, relay, everythingEdge);
  assert.match(seen.result.content[0].text, /^Long running operation completed\. Duration: 4\.8 seconds, Steps: 6\./);
  await pollUntil("the resuming GET in the access log", () =>
    / GET 200 last-event-id=\[\d+\.\d+\] /.test(everythingEdge.accessLog()));
  assert.deepEqual(badLogLines(everythingEdge.errorLog()), []);
});

test("server-everything bare: the same cut call never completes", async (t) => {
  const relay = await relayTo(everything.port);
  const seen = await callAcrossCut(relay, longRunning);
  t.diagnostic(`client saw ${describe(seen)}`);
  assert.equal(relay.stats.cuts, 1);
  // It does resume (its store gives ids and a priming event) and replays
  // the steps stored during the outage, but the resumed stream is not the
  // one the later steps and the result are sent to.
  assert.equal(seen.result, null, describe(seen));
  assert.equal(seen.error?.code, ErrorCode.RequestTimeout, describe(seen));
  assert.notDeepEqual(seen.progress, [1, 2, 3, 4, 5, 6]);
});
