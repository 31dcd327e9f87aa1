// Bundled by esbuild into the page of browser.test.mjs: the official SDK
// client, run inside Chromium against nginx on another origin. Each step's
// outcome is reported, errors by name, so the test can tell nginx's
// readable 404 from the TypeError a browser gives for an answer it may
// not read.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

async function connect(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: "ngx-mcp-session-browser", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

function failure(error) {
  return { name: error?.constructor?.name ?? typeof error, message: String(error?.message ?? error), code: error?.code };
}

async function step(report, name, run) {
  try {
    report[name] = { ok: true, value: await run() };
  } catch (error) {
    report[name] = { ok: false, error: failure(error) };
  }
  return report[name];
}

async function scenario(url) {
  const report = {};
  const first = await connect(url);
  report.sessionId = first.transport.sessionId;
  await step(report, "call", async () => {
    const result = await first.client.callTool({ name: "echo", arguments: { message: "from the browser" } });
    return result.content?.[0]?.text;
  });
  // The session ends (here: DELETE, as an expiry or another tab would).
  await step(report, "delete", async () => {
    const answer = await fetch(url, { method: "DELETE", headers: { "mcp-session-id": report.sessionId } });
    return answer.status;
  });
  // What the page can read of nginx's answer for the ended session.
  await step(report, "ended", async () => {
    const answer = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": report.sessionId,
        "mcp-protocol-version": "2025-06-18",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list", params: {} }),
    });
    return { status: answer.status, body: await answer.json() };
  });
  // The SDK client of the ended session gets the 404 as an HTTP error.
  await step(report, "sdkAfterEnd", () => first.client.listTools());
  await step(report, "reinitialize", async () => {
    const second = await connect(url);
    const tools = await second.client.listTools();
    const id = second.transport.sessionId;
    await second.transport.terminateSession();
    return { sessionId: id, tools: tools.tools.length };
  });
  return report;
}

globalThis.runScenario = scenario;
