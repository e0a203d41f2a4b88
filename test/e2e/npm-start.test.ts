/** `npm start` as a person runs it: no rebuild of an up-to-date dist/, and SIGTERM stops the daemon. */
import { spawn } from "node:child_process";
import net from "node:net";
import os from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { ROOT, makeDataDir, removeDir, waitFor } from "../helpers/server.js";

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });

describe("npm start", () => {
  it("starts the daemon without rebuilding an up-to-date dist/, and SIGTERM to npm leaves no daemon holding the port", { timeout: 60_000 }, async () => {
    const dataDir = makeDataDir();
    cleanup.push(() => removeDir(dataDir));
    const npm = spawn("npm", ["start", "--", "--port", "0"], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: os.tmpdir(),
        AGENT_CRON_DATA_DIR: dataDir,
        AGENT_CRON_ALWAYS_ON: "client",
        ...(process.env.AGENT_CRON_DIST ? { AGENT_CRON_DIST: process.env.AGENT_CRON_DIST } : {}),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    npm.stdout.on("data", (c: Buffer) => (out += c));
    npm.stderr.on("data", (c: Buffer) => (out += c));
    const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)));
    cleanup.push(() => void npm.kill("SIGKILL"));

    const url = await waitFor(() => /agent-cron ready http (\S+)/.exec(out)?.[1], { timeout: 30_000, what: "the ready line", describe: () => out });
    expect(out).not.toMatch(/building|tsc --noEmit|bundle\.mjs/);
    const port = Number(new URL(url).port);
    expect(await portOpen(port)).toBe(true);

    npm.kill("SIGTERM");
    await exited;
    // The daemon was npm's child: once npm is gone, nothing may still listen on its port.
    await waitFor(async () => !(await portOpen(port)), { timeout: 15_000, what: "the port to be free" });
  });
});
