// The SDK client's GET stream served by nginx from the shared ring:
// notifications published beside the backend reach the client; a stream
// cut by `nginx -s reload` is resumed with Last-Event-ID and every missed
// event arrives exactly once, in order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { startBackend, startNginx, pollUntil, badLogLines } from "./harness.mjs";

let backend;
let edge;

before(async () => {
  backend = await startBackend();
  edge = await startNginx({ name: "stream", backendPort: backend.port, stream: true });
});

after(async () => {
  if (edge) await edge.stop();
  if (backend) await backend.stop();
});

// One connection per publish: a pooled keep-alive connection to a worker
// that a reload has just told to quit can be closed under the next POST
// (an HTTP keep-alive race, not the module's), and fetch never retries it.
function publish(sessionId, n) {
  const body = JSON.stringify({
    jsonrpc: "2.0",
    method: "notifications/message",
    params: { level: "info", logger: "e2e", data: `n${n}` },
  });
  return new Promise((resolve, reject) => {
    const request = http.request(edge.publishUrl, {
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json", "mcp-session-id": sessionId, "content-length": Buffer.byteLength(body) },
    }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => { text += chunk; });
      response.on("end", () => {
        try {
          assert.equal(response.statusCode, 202, text);
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
    request.on("error", reject);
    request.end(body);
  });
}

test("published notifications reach the SDK client, and a cut stream resumes without loss or duplicates", async () => {
  const received = [];
  const transport = new StreamableHTTPClientTransport(new URL(edge.url), {
    // Reconnect quickly after the reload; the default 1 s also works.
    reconnectionOptions: { initialReconnectionDelay: 200, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1.5, maxRetries: 5 },
  });
  const client = new Client({ name: "ngx-mcp-session-e2e-stream", version: "1.0.0" });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    if (notification.params.logger === "e2e") received.push(notification.params.data);
  });
  await client.connect(transport);
  const sessionId = transport.sessionId;

  for (const n of [1, 2, 3]) await publish(sessionId, n);
  await pollUntil("n1..n3 on the open stream", () => received.length >= 3);
  assert.deepEqual(received, ["n1", "n2", "n3"]);

  // Reload: the old worker ends the stream; events published before the
  // client is back must be replayed from the ring after its Last-Event-ID.
  await edge.reload();
  for (const n of [4, 5, 6]) await publish(sessionId, n);
  await pollUntil("n4..n6 after the reconnect", () => received.length >= 6);
  for (const n of [7, 8]) await publish(sessionId, n);
  await pollUntil("n7, n8 live on the resumed stream", () => received.length >= 8);
  assert.deepEqual(received, ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"]);

  // The session still works for requests to the backend.
  const echo = await client.callTool({ name: "echo", arguments: { message: "still here" } });
  assert.equal(echo.content[0].text, "Echo: still here");
  await transport.terminateSession();
  await client.close();

  // Ending the session ends the resumed stream, which is then logged: it
  // was a GET that carried the id of the last event the client had.
  await pollUntil("the resumed stream in the access log", () =>
    / GET 200 last-event-id=\[[1-9]\d*\] valid/.test(edge.accessLog()));
  assert.deepEqual(badLogLines(edge.errorLog()), []);
});
