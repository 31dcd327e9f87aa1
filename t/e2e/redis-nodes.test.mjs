// Two nginx nodes (2 workers each) sharing sessions through a private
// redis-server (mcp_session_zone ... redis=), in front of one
// server-everything. The SDK client's requests alternate between the nodes
// (its fetch is the load balancer) through a whole session with tool
// calls; then the node holding its GET stream stops, its connections
// drop, and the session (stream included) goes on through the other node.
// With mcp_session_stream on, a tool call's stream recorded on one node is
// cut mid-call and resumed on the other, where the rest arrives live.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startBackend, startNginx, pollUntil, freePort, badLogLines } from "./harness.mjs";
import { startRelay } from "./cut_relay.mjs";
import { startStepsBackend } from "./steps_backend.mjs";

let backend;
let steps;
let redis;
const nodes = [];
const streamNodes = [];  // mcp_session_stream on, in front of the steps backend
let relay;

function answersPing(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let reply = "";
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => { reply += chunk; if (reply.includes("\r\n")) { socket.destroy(); resolve(reply.startsWith("+PONG")); } });
    socket.once("error", () => resolve(false));
  });
}

// A private redis-server without persistence, on a loopback port.
async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "mcp-redis-"));
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                       "--dir", dir], { stdio: "ignore" });
  await pollUntil(`redis-server on ${port}`, async () => {
    if (child.exitCode !== null) throw new Error("redis-server exited");
    return answersPing(port);
  });
  return {
    port,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await pollUntil("redis-server to exit", () => child.exitCode !== null || child.signalCode !== null);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

before(async () => {
  backend = await startBackend();
  redis = await startRedis();
  for (const name of ["redis-a", "redis-b"]) {
    nodes.push(await startNginx({ name, backendPort: backend.port, zone: `redis=127.0.0.1:${redis.port}` }));
  }
  steps = await startStepsBackend();
  for (const name of ["redis-stream-a", "redis-stream-b"]) {
    streamNodes.push(await startNginx({ name, backendPort: steps.port, stream: true,
                                        zone: `redis=127.0.0.1:${redis.port} redis_prefix=streams:` }));
  }
  for (const node of [...nodes, ...streamNodes]) {
    await pollUntil("the node's link to Redis", async () => {
      const status = await (await fetch(node.url.replace(/\/mcp$/, "/mcp-status"))).json();
      return status.redis?.link === "up";
    });
  }
});

after(async () => {
  if (relay) await relay.close();
  for (const node of [...nodes, ...streamNodes]) await node.stop();
  if (steps) await steps.stop();
  if (redis) await redis.stop();
  if (backend) await backend.stop();
});

// Requests (with this session's id) each node's access log shows.
function sessionRequests(node, method) {
  return node.accessLog().split("\n").filter((line) => line.includes(` ${method} `)).length;
}

test("an SDK session alternating between two nodes, then surviving the loss of one", async () => {
  const [a, b] = nodes;
  const live = new Set([a, b]);
  let turn = 0;
  const streamsOpened = [];  // the node each GET stream went to
  // The load balancer: each request to the next live node, in turn.
  const balanced = (url, init) => {
    const targets = [a, b].filter((node) => live.has(node));
    const node = targets[turn++ % targets.length];
    if ((init?.method ?? "GET") === "GET") streamsOpened.push(node);
    return fetch(node.url, init);
  };
  const transport = new StreamableHTTPClientTransport(new URL(a.url), {
    fetch: balanced,
    reconnectionOptions: { initialReconnectionDelay: 100, maxReconnectionDelay: 500, reconnectionDelayGrowFactor: 1.5, maxRetries: 20 },
  });
  const client = new Client({ name: "ngx-mcp-session-e2e", version: "1.0.0" });
  await client.connect(transport);
  const sessionId = transport.sessionId;
  assert.ok(sessionId, "the backend made a session");

  for (let i = 0; i < 6; i++) {
    const tools = await client.listTools();
    assert.ok(tools.tools.some((tool) => tool.name === "echo"));
    const echoed = await client.callTool({ name: "echo", arguments: { message: `round ${i}` } });
    assert.equal(echoed.content[0].text, `Echo: round ${i}`);
  }
  assert.ok(sessionRequests(a, "POST") >= 6 && sessionRequests(b, "POST") >= 6,
    `both nodes served the session (A ${sessionRequests(a, "POST")}, B ${sessionRequests(b, "POST")} POSTs)`);
  for (const node of nodes) assert.doesNotMatch(node.accessLog(), / 404 /, "no node answered 404");

  // The node holding the GET stream goes away: every connection through
  // it drops, the stream too; the session goes on through the other.
  await pollUntil("the SDK client's GET stream", () => streamsOpened.length > 0);
  const gone = streamsOpened.at(-1);
  const other = gone === a ? b : a;
  const streamsBefore = streamsOpened.length;
  live.delete(gone);
  await gone.stop();
  const echoed = await client.callTool({ name: "echo", arguments: { message: "after the loss" } });
  assert.equal(echoed.content[0].text, "Echo: after the loss", "the session lives on through the other node");
  await pollUntil("the SDK client to reopen its GET stream through the other node",
    () => streamsOpened.length > streamsBefore && streamsOpened.at(-1) === other);
  const tools = await client.listTools();
  assert.ok(tools.tools.length > 0);
  assert.doesNotMatch(other.accessLog(), / 404 /, "the other node never answered 404");
  await client.close();
  for (const node of nodes) assert.deepEqual(badLogLines(node.errorLog()), []);
});

test("a tool call's stream cut on one node resumes on the other: every progress once, in order, the rest live", async () => {
  const [a, b] = streamNodes;
  relay = await startRelay(Number(new URL(a.url).port));
  const relayUrl = relay.url;
  // POSTs go to A through the relay (which the test cuts); every GET,
  // the resume of the cut stream among them, goes to B.
  const byMethod = (url, init) => fetch((init?.method ?? "GET") === "GET" ? b.url : relayUrl, init);
  const transport = new StreamableHTTPClientTransport(new URL(a.url), {
    fetch: byMethod,
    reconnectionOptions: { initialReconnectionDelay: 100, maxReconnectionDelay: 400, reconnectionDelayGrowFactor: 1.5, maxRetries: 10 },
  });
  const client = new Client({ name: "ngx-mcp-session-e2e-nodes", version: "1.0.0" });
  await client.connect(transport);
  const progress = [];
  // 400 ms a step: the cut comes at 0.8 s and the client is back on B
  // within the 1.5 s outage's first tries, so the later steps and the
  // result reach B live, from A's recording, through Redis.
  const result = await client.callTool({ name: "steps", arguments: { count: 8, intervalMs: 400 } }, undefined, {
    onprogress: ({ progress: step }) => {
      progress.push(step);
      if (step === 2 && relay.stats.cuts === 0) relay.cut();
    },
    resetTimeoutOnProgress: true,
    timeout: 5000,
    maxTotalTimeout: 20000,
  });
  assert.equal(relay.stats.cuts, 1);
  assert.deepEqual(progress, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(result.content[0].text, "steps done: 8");
  assert.match(a.errorLog(), /mcp_session: client left during a POST stream/, "A went on reading the backend");
  // The resume's log line is written when its stream ends, after the result went out.
  await pollUntil("the resume on B in its access log", () => / GET 200 last-event-id=\[\d+\.\d+\] /.test(b.accessLog()));
  await transport.terminateSession();
  await client.close();
  for (const node of streamNodes) assert.deepEqual(badLogLines(node.errorLog()), []);
});
