// A browser client: the official SDK client bundled into a page that
// headless Chromium (Debian's package, driven by playwright-core) loads
// from another origin than nginx's /mcp. It initializes, calls a tool,
// reads nginx's 404 after the session ends and re-initializes, which only
// works when nginx's own answers carry CORS headers; with
// `mcp_session_cors off` the same page sees network errors instead.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { startBackend, startNginx, badLogLines } from "./harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const pageRoot = path.join(here, "run-browser-page");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

let backend;
let browser;
const edges = [];

before(async () => {
  mkdirSync(pageRoot, { recursive: true });
  await build({
    entryPoints: [path.join(here, "browser_page.mjs")],
    bundle: true,
    format: "iife",
    platform: "browser",
    outfile: path.join(pageRoot, "client.js"),
    logLevel: "error",
  });
  writeFileSync(path.join(pageRoot, "index.html"),
    '<!doctype html><meta charset="utf-8"><title>mcp</title><script src="client.js"></script>\n');
  backend = await startBackend();
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  for (const edge of edges) await edge.stop();
  if (backend) await backend.stop();
});

async function runInPage(edge) {
  const page = await browser.newPage();
  try {
    await page.goto(edge.pageUrl);
    return await page.evaluate((url) => globalThis.runScenario(url), edge.url);
  } finally {
    await page.close();
  }
}

test("a browser page on another origin: initialize, tool call, nginx's 404 after the end, re-initialize", async () => {
  const edge = await startNginx({ name: "browser", backendPort: backend.port, stream: true, pageRoot });
  edges.push(edge);
  const report = await runInPage(edge);
  assert.match(report.sessionId, /\S/, "the page read the session id from the initialize answer");
  assert.deepEqual(report.call, { ok: true, value: "Echo: from the browser" });
  assert.deepEqual(report.delete, { ok: true, value: 200 });
  assert.equal(report.ended.ok, true, JSON.stringify(report.ended));
  assert.equal(report.ended.value.status, 404);
  assert.equal(report.ended.value.body.error.data.retry, "re-initialize", "the page can read nginx's 404 body");
  assert.equal(report.sdkAfterEnd.ok, false);
  assert.match(report.sdkAfterEnd.error.message, /404/, "the SDK client sees an HTTP 404, not a network error");
  assert.equal(report.reinitialize.ok, true, JSON.stringify(report.reinitialize));
  assert.notEqual(report.reinitialize.value.sessionId, report.sessionId);
  assert.ok(report.reinitialize.value.tools > 0);
  assert.deepEqual(badLogLines(edge.errorLog()), []);
});

test("with mcp_session_cors off the same page cannot read nginx's own answers", async () => {
  const edge = await startNginx({ name: "browser-nocors", backendPort: backend.port, stream: true, pageRoot, cors: false });
  edges.push(edge);
  const report = await runInPage(edge);
  assert.deepEqual(report.call, { ok: true, value: "Echo: from the browser" }, "proxied answers carry the backend's CORS");
  assert.equal(report.ended.ok, false);
  assert.equal(report.ended.error.name, "TypeError", "nginx's 404 is a network error to the page");
  assert.equal(report.sdkAfterEnd.ok, false);
  assert.doesNotMatch(report.sdkAfterEnd.error.message, /404/);
});
