// A TCP relay a test can cut, standing for a network that drops: Wi-Fi
// that goes away, a proxy restarting.
import net from "node:net";
import { freePort } from "./harness.mjs";

export const OUTAGE_MS = 1500;

// A TCP relay in front of 127.0.0.1:targetPort. cut() resets every open
// connection (both sides) and, for `ms`, closes each new one as soon as it
// is accepted; then it accepts again.
export async function startRelay(targetPort) {
  const sockets = new Set();
  let refusing = false;
  let timer = null;
  const stats = { accepted: 0, refused: 0, cuts: 0 };
  const server = net.createServer((downstream) => {
    if (refusing) {
      stats.refused++;
      downstream.resetAndDestroy();
      return;
    }
    stats.accepted++;
    const upstream = net.connect({ host: "127.0.0.1", port: targetPort });
    sockets.add(downstream);
    sockets.add(upstream);
    const drop = () => {
      sockets.delete(downstream);
      sockets.delete(upstream);
      downstream.destroy();
      upstream.destroy();
    };
    for (const socket of [downstream, upstream]) {
      socket.on("error", drop);
      socket.on("close", drop);
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    stats,
    cut(ms = OUTAGE_MS) {
      stats.cuts++;
      refusing = true;
      for (const socket of [...sockets]) socket.resetAndDestroy();
      sockets.clear();
      timer = setTimeout(() => { refusing = false; }, ms);
    },
    async close() {
      clearTimeout(timer);
      for (const socket of [...sockets]) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

