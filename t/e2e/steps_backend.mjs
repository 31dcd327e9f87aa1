// The SDK backend of steps_server.mjs (no event store) as a child process.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pollUntil, freePort } from "./harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

export async function startStepsBackend() {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(here, "steps_server.mjs")], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => { stdout += chunk; });
  child.stderr.on("data", (chunk) => { stderr += chunk; });
  await pollUntil(`the steps backend on port ${port}`, () => {
    if (child.exitCode !== null) throw new Error(`steps backend exited: ${stderr}`);
    return stdout.includes(`listening ${port}`);
  });
  return {
    port,
    log: () => stdout + stderr,
    // The backend ran the call to its end (it returned its result).
    finished: (sessionId) => stdout.includes(`done session ${sessionId}`),
    // What the SDK reported for the session, e.g. a result it could not send.
    errors: (sessionId) => stdout.split("\n").filter((line) => line.startsWith(`error session ${sessionId}:`)),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await pollUntil("the steps backend to exit", () => child.exitCode !== null || child.signalCode !== null);
    },
  };
}

