// The stream's wire forms with the SDK client (issue 12 items 1 and 3):
// a progress notification published with ?event=progress reaches the
// request's onprogress; a second client of the same session gets only
// what no stream delivered, so every message is seen once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { startBackend, startNginx, pollUntil, badLogLines } from "./harness.mjs";

let backend;
let edge;

before(async () => {
  backend = await startBackend();
  edge = await startNginx({ name: "stream-wire", backendPort: backend.port, stream: true });
});

after(async () => {
  if (edge) await edge.stop();
  if (backend) await backend.stop();
});

// One connection per publish (see stream.test.mjs); `kind` is ?event=.
function publish(sessionId, message, kind) {
  const body = JSON.stringify({ jsonrpc: "2.0", ...message });
  const url = kind ? `${edge.publishUrl}?event=${kind}` : edge.publishUrl;
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json", "mcp-session-id": sessionId, "content-length": Buffer.byteLength(body) },
    }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => { text += chunk; });
      response.on("end", () => (response.statusCode === 202 ? resolve() : reject(new Error(`${response.statusCode} ${text}`))));
    });
    request.on("error", reject);
    request.end(body);
  });
}

const note = (data) => ({ method: "notifications/message", params: { level: "info", logger: "e2e", data } });

function loggingClient(name, received) {
  const client = new Client({ name, version: "1.0.0" });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    if (notification.params.logger === "e2e") received.push(notification.params.data);
  });
  return client;
}

test("a progress notification published with ?event=progress fires the request's onprogress", async () => {
  const received = [];
  const transport = new StreamableHTTPClientTransport(new URL(edge.url));
  const client = loggingClient("ngx-mcp-session-e2e-progress", received);
  // The progress token the SDK puts in the tool call's _meta.
  let token;
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    if (message.method === "tools/call") token = message.params?._meta?.progressToken;
    return send(message, options);
  };
  await client.connect(transport);
  const sessionId = transport.sessionId;
  await publish(sessionId, note("ready"));
  await pollUntil("the GET stream is open", () => received.includes("ready"));

  const progress = [];
  const call = client.request(
    { method: "tools/call", params: { name: "trigger-long-running-operation", arguments: { duration: 3, steps: 1 } } },
    CallToolResultSchema,
    { onprogress: (p) => progress.push(p) },
  );
  await pollUntil("the tool call is sent", () => token !== undefined);
  await publish(sessionId,
    { method: "notifications/progress", params: { progressToken: token, progress: 1, total: 4, message: "from nginx" } },
    "progress");
  await pollUntil("onprogress for the published progress", () => progress.some((p) => p.message === "from nginx"));
  const result = await call;
  assert.match(result.content[0].text, /completed/);
  await transport.terminateSession();
  await client.close();
  assert.deepEqual(badLogLines(edge.errorLog()), []);
});

test("two SDK clients of one session see each message once", async () => {
  const first = [];
  const transportA = new StreamableHTTPClientTransport(new URL(edge.url));
  const clientA = loggingClient("ngx-mcp-session-e2e-first", first);
  await clientA.connect(transportA);
  const sessionId = transportA.sessionId;
  for (const n of [1, 2]) await publish(sessionId, note(`n${n}`));
  await pollUntil("n1, n2 on the first client's stream", () => first.length >= 2);
  await clientA.close();  // leaves the session (no DELETE): a second tab goes on with it

  // The second client joins the session without initialize: its GET
  // stream (opened after notifications/initialized) has no Last-Event-ID.
  const second = [];
  const transportB = new StreamableHTTPClientTransport(new URL(edge.url), { sessionId });
  const clientB = loggingClient("ngx-mcp-session-e2e-second", second);
  await clientB.connect(transportB);
  await clientB.notification({ method: "notifications/initialized" });
  // n3 is new whether or not that stream is open yet: it arrives either way.
  await publish(sessionId, note("n3"));
  await pollUntil("n3 on the second client's stream", () => second.includes("n3"));
  assert.deepEqual(first, ["n1", "n2"]);
  assert.deepEqual(second, ["n3"], "the second client gets no message the first one already had");
  await transportB.terminateSession();
  await clientB.close();
  assert.deepEqual(badLogLines(edge.errorLog()), []);
});
