// Starts the processes an end-to-end test needs, on 127.0.0.1 only:
// the reference MCP server (server-everything, Streamable HTTP) and nginx
// with the module in its own prefix. Every wait polls with a deadline.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
// Run from build/e2e (copied there by build.sh): the repository is two up.
const repo = path.resolve(here, "..", "..");
export const modulePath = process.env.MCP_SESSION_MODULE ?? path.join(repo, "build", "ngx_mcp_session_module.so");
const nginxBinary = process.env.NGINX_BIN ?? "/usr/sbin/nginx";

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function pollUntil(what, check, { timeoutMs = 15000, intervalMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(intervalMs);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

// port: listen there (a restart on the same port); default a free one.
export async function startBackend({ port: wanted } = {}) {
  const port = wanted ?? await freePort();
  const entry = path.join(here, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js");
  const child = spawn(process.execPath, [entry, "streamableHttp"], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stderr.on("data", (chunk) => { stderr += chunk; });
  child.stdout.on("data", (chunk) => { stdout += chunk; });
  await pollUntil(`server-everything on port ${port}`, async () => {
    if (child.exitCode !== null) throw new Error(`server-everything exited: ${stderr}`);
    return accepts(port);
  });
  return {
    port,
    // Session ids the backend itself issued (it logs each one).
    sessionIds: () => [...stdout.matchAll(/Session initialized with ID: (\S+)/g)].map((m) => m[1]),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await pollUntil("server-everything to exit", () => child.exitCode !== null || child.signalCode !== null);
    },
  };
}

// zone: the mcp_session_zone parameters after zone=mcp:SIZE; stream: nginx
// serves the GET stream from the ring and offers /mcp/publish.
// pageRoot: a directory served on another port (another origin), for a
// browser page that talks to /mcp cross-origin; cors: mcp_session_cors.
// proxyPass: /mcp's proxy_pass target instead of 127.0.0.1:backendPort (an
// upstream named in httpExtra); httpExtra, serverExtra: text added to the
// http block (upstreams) and to the server block (more locations).
// heal: mcp_session_heal on /mcp (issue mode). /mcp-status is the zone's status.
export async function startNginx({ name, backendPort, zone = "", stream = false, mode = "learn", pageRoot = null, cors = true,
                                   proxyPass = null, httpExtra = "", serverExtra = "", heal = false }) {
  const prefix = path.join(here, `run-${name}`);
  rmSync(prefix, { recursive: true, force: true });
  for (const dir of ["conf", "logs", "tmp"]) mkdirSync(path.join(prefix, dir), { recursive: true });
  const port = await freePort();
  const pagePort = pageRoot ? await freePort() : 0;
  const pageServer = pageRoot ? `server { listen 127.0.0.1:${pagePort}; root ${pageRoot}; }` : "";
  const user = process.getuid && process.getuid() === 0 ? "user root;" : "";
  writeFileSync(path.join(prefix, "conf", "nginx.conf"), `
load_module ${modulePath};
${user}
worker_processes 2;
worker_shutdown_timeout 3s;
pid ${prefix}/logs/nginx.pid;
error_log ${prefix}/logs/error.log info;
events { worker_connections 1024; }
http {
    log_format e2e '$pid $request_method $status last-event-id=[$http_last_event_id] $mcp_session_status';
    access_log ${prefix}/logs/access.log e2e;
    client_body_temp_path ${prefix}/tmp;
    proxy_temp_path ${prefix}/tmp;
    mcp_session_zone zone=mcp:4m ${zone};
    server {
        listen 127.0.0.1:${port} reuseport;
        location = /mcp/publish { mcp_session_publish zone=mcp; allow 127.0.0.1; deny all; }
        location = /mcp-status { mcp_session_status zone=mcp; allow 127.0.0.1; deny all; }
        location /mcp {
            mcp_session zone=mcp;
            mcp_session_stream ${stream ? "on" : "off"};
            mcp_session_mode ${mode};
            mcp_session_cors ${cors ? "on" : "off"};
            mcp_session_heal ${heal ? "on" : "off"};
            proxy_pass ${proxyPass ?? `http://127.0.0.1:${backendPort}`};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }
        ${serverExtra}
    }
    ${httpExtra}
    ${pageServer}
}
`);
  const started = spawnSync(nginxBinary, ["-p", `${prefix}/`, "-c", `${prefix}/conf/nginx.conf`], { encoding: "utf8" });
  if (started.status !== 0) throw new Error(`nginx failed to start: ${started.stderr}`);
  const pidFile = path.join(prefix, "logs", "nginx.pid");
  const masterPid = await pollUntil("nginx pid file", () =>
    existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) || false : false);
  await pollUntil(`nginx on port ${port}`, () => accepts(port));
  const workerPids = () => {
    const children = spawnSync("ps", ["-o", "pid=", "--ppid", String(masterPid)], { encoding: "utf8" });
    return children.stdout.split("\n").map((s) => s.trim()).filter(Boolean).map(Number).sort();
  };
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    pageUrl: pageRoot ? `http://127.0.0.1:${pagePort}/` : null,
    publishUrl: `http://127.0.0.1:${port}/mcp/publish`,
    errorLog: () => readFileSync(path.join(prefix, "logs", "error.log"), "utf8"),
    accessLog: () => readFileSync(path.join(prefix, "logs", "access.log"), "utf8"),
    workerPids,
    // nginx -s reload; resolves once every worker is a new one.
    async reload() {
      const before = new Set(workerPids());
      process.kill(masterPid, "SIGHUP");
      await pollUntil("new nginx workers after reload", () => {
        const now = workerPids();
        return now.length === 2 && now.every((pid) => !before.has(pid));
      });
    },
    async stop() {
      for (const [signal, ms] of [["SIGQUIT", 10000], ["SIGTERM", 3000], ["SIGKILL", 3000]]) {
        if (!alive(masterPid)) return;
        process.kill(masterPid, signal);
        try {
          await pollUntil("nginx to exit", () => !alive(masterPid), { timeoutMs: ms });
          return;
        } catch { /* escalate */ }
      }
    },
  };
}

// `count` replicas of replica_server.mjs (an SDK server with sessions in
// process memory), each on its own port. A replica can be killed
// (SIGKILL: a crash, every session and connection gone at once) and
// started again on the same port, with none of its old sessions.
export async function startReplicas(count) {
  const entry = path.join(here, "replica_server.mjs");
  const replicas = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    const replica = {
      port,
      child: null,
      output: "",
      // Session ids this run of the replica was asked for and did not know.
      unknownSessions: () => [...replica.output.matchAll(/^unknown session (\S+)$/gm)].map((m) => m[1]),
      running: () => Boolean(replica.child && replica.child.exitCode === null && replica.child.signalCode === null),
      async start() {
        if (replica.running()) {
          throw new Error(`replica on ${port} is already running`);
        }
        replica.output = "";
        const child = spawn(process.execPath, [entry], {
          env: { ...process.env, PORT: String(port) },
          stdio: ["ignore", "pipe", "pipe"],
        });
        replica.child = child;
        child.stdout.on("data", (chunk) => { replica.output += chunk; });
        child.stderr.on("data", (chunk) => { replica.output += chunk; });
        await pollUntil(`replica on port ${port}`, async () => {
          if (child.exitCode !== null) throw new Error(`replica on ${port} exited: ${replica.output}`);
          return replica.output.includes(`listening ${port}`) && accepts(port);
        });
      },
      async kill(signal = "SIGKILL") {
        const child = replica.child;
        if (!replica.running()) return;
        child.kill(signal);
        await pollUntil(`replica on ${port} to exit`, () => child.exitCode !== null || child.signalCode !== null);
        await pollUntil(`port ${port} to refuse connections`, async () => !(await accepts(port)));
      },
      async restart() {
        await replica.kill();
        await replica.start();
      },
      stop() { return replica.kill("SIGTERM"); },
    };
    replicas.push(replica);
  }
  try {
    await Promise.all(replicas.map((replica) => replica.start()));
  } catch (err) {
    await Promise.all(replicas.map((replica) => replica.kill()));
    throw err;
  }
  return replicas;
}

// Lines that must never appear in an nginx error log.
export function badLogLines(text) {
  return text.split("\n").filter((line) => /\[(alert|crit|emerg)\]|exited on signal/.test(line));
}
