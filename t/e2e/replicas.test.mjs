// Issue 14: three replicas of an SDK server that keeps its sessions in
// process memory (replica_server.mjs) behind one nginx upstream with
// `mcp_session_sticky`, 2 workers; /mcp in learn mode, /issue/mcp in issue
// mode, one zone. Every session must stay on the replica that made it; a
// replica that dies or restarts must show its sessions nginx's 404 (the
// one answer clients re-initialize on), never its own 400 or a 502; a
// restarted server-everything behind learn mode the same.
//
// The SDK client gets no GET-stream reconnects here (maxRetries 0): a
// session's only requests are the test's own, so which request met the
// dead or restarted replica is known.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startBackend, startNginx, startReplicas, pollUntil, badLogLines } from "./harness.mjs";

const SESSIONS = 30;
const CALLS = 6;
const noReconnect = { initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1, maxRetries: 0 };

let replicas = [];
const clients = new Set();
const stops = [];
let edgeStarted = null;

// nginx is started by the first test that needs it, so the replica-only
// test still runs when nginx refuses its config.
function edge() {
  edgeStarted ??= (async () => {
    const servers = replicas.map((r) => `server 127.0.0.1:${r.port} max_fails=1 fail_timeout=2s;`).join("\n        ");
    const started = await startNginx({
      name: "replicas",
      proxyPass: "http://replicas",
      httpExtra: `
    upstream replicas {
        ${servers}
        mcp_session_sticky;
    }`,
      serverExtra: `
        location /issue/ {
            mcp_session zone=mcp;
            mcp_session_mode issue;
            proxy_pass http://replicas/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }
        location /heal/ {
            mcp_session zone=mcp;
            mcp_session_mode issue;
            mcp_session_heal on;
            proxy_pass http://replicas/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }`,
    });
    stops.push(() => started.stop());
    return { ...started, learnUrl: started.url, issueUrl: started.url.replace(/\/mcp$/, "/issue/mcp"),
             healUrl: started.url.replace(/\/mcp$/, "/heal/mcp") };
  })();
  return edgeStarted;
}

before(async () => {
  replicas = await startReplicas(3);
});

after(async () => {
  await Promise.allSettled([...clients].map((c) => c.close()));
  for (const stop of stops.reverse()) await stop();
  await Promise.allSettled(replicas.map((r) => r.stop()));
});

async function connect(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { reconnectionOptions: noReconnect });
  const client = new Client({ name: "ngx-mcp-session-e2e-replicas", version: "1.0.0" });
  client.onerror = () => {};  // the standalone GET stream's end when a replica dies
  await client.connect(transport);
  clients.add(client);
  return { client, transport };
}

async function closeAll(sessions) {
  await Promise.allSettled(sessions.map(async ({ client }) => { await client.close(); clients.delete(client); }));
}

async function whoami(client) {
  const result = await client.callTool({ name: "whoami", arguments: {} });
  assert.notEqual(result.isError, true, JSON.stringify(result));
  return JSON.parse(result.content[0].text);
}

async function edgeStatus(nginx) {
  const res = await fetch(nginx.url.replace(/\/mcp$/, "/mcp-status"));
  return res.json();
}

// A session and the replica it landed on (its first whoami).
async function openSession(url) {
  const session = await connect(url);
  const first = await whoami(session.client);
  assert.equal(first.calls, 1);
  return { ...session, id: session.transport.sessionId, port: first.port, calls: 1 };
}

// What the SDK client throws for nginx's 404: a StreamableHTTPError with
// code 404 whose text is nginx's re-initialize body.
async function assertNginx404(call, what) {
  let failure = null;
  try {
    const value = await call();
    assert.fail(`${what}: expected nginx's 404, the call succeeded with ${JSON.stringify(value)}`);
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    failure = error;
  }
  assert.ok(failure instanceof StreamableHTTPError, `${what}: ${failure?.constructor?.name}: ${failure?.message}`);
  assert.equal(failure.code, 404, `${what}: ${failure.message}`);
  const text = failure.message.replace(/^Streamable HTTP error: Error POSTing to endpoint: /, "");
  const body = JSON.parse(text);
  assert.equal(body.jsonrpc, "2.0", text);
  assert.equal(body.id, null, text);
  assert.equal(body.error.code, -32001, text);
  assert.equal(body.error.data?.retry, "re-initialize", `${what}: not nginx's re-initialize body: ${text}`);
  return body;
}

function portsOf(sessions) {
  return new Set(sessions.map((s) => s.port));
}

test("the premise, without nginx: a restarted replica answers its old session with the SDK examples' 400", async () => {
  const [replica] = replicas;
  const session = await openSession(`http://127.0.0.1:${replica.port}/mcp`);
  assert.equal(session.port, replica.port);
  assert.equal((await whoami(session.client)).calls, 2);
  await replica.restart();
  let failure = null;
  try { await whoami(session.client); } catch (error) { failure = error; }
  assert.ok(failure instanceof StreamableHTTPError, String(failure));
  assert.equal(failure.code, 400);
  assert.match(failure.message, /"code":-32000,"message":"Bad Request: No valid session ID provided"/);
  // The replica's log line comes over a pipe: it may follow the answer.
  await pollUntil("the restarted replica's log of the unknown session", () => replica.unknownSessions().length > 0);
  assert.deepEqual(replica.unknownSessions(), [session.id]);
  await closeAll([session]);
});

for (const mode of ["learn", "issue"]) {
  test(`${mode} mode: ${SESSIONS} concurrent SDK sessions x ${CALLS} calls, each on its own replica, spread over all three`, async () => {
    const nginx = await edge();
    const url = mode === "learn" ? nginx.learnUrl : nginx.issueUrl;
    const opened = await Promise.allSettled(Array.from({ length: SESSIONS }, () => connect(url)));
    const sessions = opened.filter((o) => o.status === "fulfilled").map((o) => o.value);
    const failures = opened.filter((o) => o.status === "rejected").map((o) => String(o.reason));
    const answers = await Promise.all(sessions.map(async ({ client }) => {
      const seen = [];
      for (let i = 0; i < CALLS; i++) {
        try { seen.push(await whoami(client)); } catch (error) { failures.push(String(error)); }
      }
      return seen;
    }));
    await closeAll(sessions);
    assert.deepEqual(failures, [], `${failures.length} failed (of ${SESSIONS} initializes and ${SESSIONS * CALLS} calls)`);
    for (const seen of answers) {
      assert.equal(new Set(seen.map((a) => a.port)).size, 1, `one session met several replicas: ${JSON.stringify(seen)}`);
      assert.deepEqual(seen.map((a) => a.calls), [1, 2, 3, 4, 5, 6], "one replica counted every call of the session");
    }
    const used = new Set(answers.map((seen) => seen[0].port));
    assert.deepEqual([...used].sort(), replicas.map((r) => r.port).sort(), "sessions spread over all three replicas");
    assert.deepEqual(badLogLines(nginx.errorLog()), []);
  });
}

test("learn mode: a killed replica's sessions get nginx's 404, the others go on, a new initialize lands on a live replica", async () => {
  const nginx = await edge();
  const victim = replicas[1];
  const sessions = [];
  for (let i = 0; i < 12; i++) sessions.push(await openSession(nginx.learnUrl));
  const doomed = sessions.filter((s) => s.port === victim.port);
  const spared = sessions.filter((s) => s.port !== victim.port);
  assert.ok(doomed.length > 0 && spared.length > 0, `round robin put sessions on ${[...portsOf(sessions)]}`);

  await victim.kill();
  for (const session of doomed) {
    await assertNginx404(() => whoami(session.client), `session ${session.id} on the killed replica`);
  }
  for (const session of spared) {
    const again = await whoami(session.client);
    assert.deepEqual([again.port, again.calls], [session.port, 2], `session ${session.id} stayed where it was`);
  }
  const fresh = [];
  for (let i = 0; i < 6; i++) fresh.push(await openSession(nginx.learnUrl));
  for (const session of fresh) assert.notEqual(session.port, victim.port, "a new session on a live replica");
  await closeAll([...sessions, ...fresh]);
  assert.deepEqual(badLogLines(nginx.errorLog()), []);
});

test("a restarted replica (same port): its old sessions get nginx's 404 for its 400, in learn and issue mode, and re-initialize works", async () => {
  const nginx = await edge();
  const victim = replicas[1];
  // Back from the previous test's kill, or from the premise's restart.
  if (!victim.running()) await victim.start();

  // Sessions on the victim in both modes: round robin comes back to it
  // once its fail_timeout from the previous test is over.
  const onVictim = { learn: [], issue: [] };
  const elsewhere = [];
  for (const mode of ["learn", "issue"]) {
    const url = mode === "learn" ? nginx.learnUrl : nginx.issueUrl;
    await pollUntil(`two ${mode}-mode sessions on the replica on ${victim.port}`, async () => {
      const session = await openSession(url);
      if (session.port === victim.port) onVictim[mode].push(session);
      else if (elsewhere.length < 4) elsewhere.push(session);
      else await closeAll([session]);
      return onVictim[mode].length >= 2;
    }, { timeoutMs: 20000, intervalMs: 50 });
  }
  assert.ok(elsewhere.length > 0, "some sessions on the other replicas");

  await victim.restart();  // no request in between: nginx learns of it from the request below
  for (const mode of ["learn", "issue"]) {
    for (const session of onVictim[mode]) {
      await assertNginx404(() => whoami(session.client), `${mode}-mode session ${session.id} on the restarted replica`);
    }
  }
  // Each of those requests reached the new process, whose 400 nginx turned into its 404.
  const expected = onVictim.learn.length + onVictim.issue.length;
  await pollUntil("the restarted replica's log of each unknown session", () => victim.unknownSessions().length >= expected);
  const unknown = victim.unknownSessions();
  for (const session of onVictim.learn) assert.ok(unknown.includes(session.id), `the restarted replica saw ${session.id}: ${unknown}`);
  assert.equal(unknown.length, expected, `one 400 per session: ${unknown}`);

  for (const session of elsewhere) {
    const again = await whoami(session.client);
    assert.deepEqual([again.port, again.calls], [session.port, 2], `session ${session.id} stayed where it was`);
  }
  // The documented recovery: a new transport, a new initialize; the
  // restarted replica takes new sessions again.
  for (const mode of ["learn", "issue"]) {
    const url = mode === "learn" ? nginx.learnUrl : nginx.issueUrl;
    const again = await pollUntil(`a new ${mode}-mode session on the restarted replica`, async () => {
      const session = await openSession(url);
      if (session.port === victim.port) return session;
      await closeAll([session]);
      return false;
    }, { timeoutMs: 10000, intervalMs: 50 });
    assert.equal((await whoami(again.client)).calls, 2);
    elsewhere.push(again);
  }
  await closeAll([...onVictim.learn, ...onVictim.issue, ...elsewhere]);
  assert.deepEqual(badLogLines(nginx.errorLog()), []);
});

// Sessions on `victim` and elsewhere, through `url`: round robin comes
// back to the victim once its fail_timeout is over.
async function sessionsOn(victim, url, wanted) {
  const onVictim = [];
  const elsewhere = [];
  await pollUntil(`${wanted} sessions on the replica on ${victim.port}`, async () => {
    const session = await openSession(url);
    if (session.port === victim.port) onVictim.push(session);
    else if (elsewhere.length < 4) elsewhere.push(session);
    else await closeAll([session]);
    return onVictim.length >= wanted && elsewhere.length > 0;
  }, { timeoutMs: 20000, intervalMs: 50 });
  return { onVictim, elsewhere };
}

for (const how of ["killed", "restarted"]) {
  test(`issue mode + mcp_session_heal: a ${how} replica's sessions heal silently, the SDK client's next callTool just works`, async () => {
    const nginx = await edge();
    const victim = replicas[2];
    if (!victim.running()) await victim.start();
    const { onVictim, elsewhere } = await sessionsOn(victim, nginx.healUrl, 3);
    const before = (await edgeStatus(nginx)).counters;

    if (how === "killed") await victim.kill();
    else await victim.restart();
    for (const session of onVictim) {
      const healed = await whoami(session.client);  // throws on any error the client would see
      if (how === "killed") assert.notEqual(healed.port, victim.port, "served by a live replica");
      assert.equal(healed.calls, 1, "in a new backend session (its first call there)");
      const next = await whoami(session.client);
      assert.deepEqual([next.port, next.calls], [healed.port, 2], "and the session stays in it");
      assert.equal(session.transport.sessionId, session.id, "the client kept its session id all along");
    }
    for (const session of elsewhere) {
      const again = await whoami(session.client);
      assert.deepEqual([again.port, again.calls], [session.port, 2], `session ${session.id} stayed where it was`);
    }
    const after = (await edgeStatus(nginx)).counters;
    assert.equal(after.sessions_healed - before.sessions_healed, onVictim.length, "one heal per session");
    assert.equal(after.sessions_replica_lost - before.sessions_replica_lost, 0, "no session lost");
    assert.equal(after.sessions_backend_lost - before.sessions_backend_lost, 0, "no session lost");
    await closeAll([...onVictim, ...elsewhere]);
    assert.deepEqual(badLogLines(nginx.errorLog()), []);
  });
}

test("server-everything restarted behind issue mode + mcp_session_heal: the SDK client's next call just works", async () => {
  let backend = await startBackend();
  stops.push(() => backend.stop());
  const nginx = await startNginx({
    name: "replicas-heal",
    backendPort: backend.port,
    mode: "issue",
    heal: true,
  });
  stops.push(() => nginx.stop());

  const session = await connect(nginx.url);
  const echo = await session.client.callTool({ name: "echo", arguments: { message: "before the restart" } });
  assert.equal(echo.content[0].text, "Echo: before the restart");

  const { port } = backend;
  await backend.stop();
  backend = await startBackend({ port });
  const healed = await session.client.callTool({ name: "echo", arguments: { message: "after the restart" } });
  assert.equal(healed.content[0].text, "Echo: after the restart");
  const tools = await session.client.listTools();
  assert.ok(tools.tools.some((t) => t.name === "echo"), "the healed session lists the server's tools");
  await session.transport.terminateSession();
  await closeAll([session]);
  assert.deepEqual(badLogLines(nginx.errorLog()), []);
});

test("server-everything restarted behind learn mode: the SDK client gets nginx's 404, not the backend's 400, then re-initializes", async () => {
  let backend = await startBackend();
  stops.push(() => backend.stop());
  const nginx = await startNginx({ name: "replicas-restart", backendPort: backend.port });
  stops.push(() => nginx.stop());

  const first = await connect(nginx.url);
  const echo = await first.client.callTool({ name: "echo", arguments: { message: "before the restart" } });
  assert.equal(echo.content[0].text, "Echo: before the restart");

  const { port } = backend;
  await backend.stop();
  backend = await startBackend({ port });
  await assertNginx404(() => first.client.callTool({ name: "echo", arguments: { message: "lost" } }),
    `session ${first.transport.sessionId} after the backend's restart`);
  await closeAll([first]);

  const second = await connect(nginx.url);
  assert.notEqual(second.transport.sessionId, first.transport.sessionId);
  const again = await second.client.callTool({ name: "echo", arguments: { message: "after the restart" } });
  assert.equal(again.content[0].text, "Echo: after the restart");
  await second.transport.terminateSession();
  await closeAll([second]);
  assert.deepEqual(badLogLines(nginx.errorLog()), []);
});
