import path from "node:path";
import os from "node:os";
import { describe, expect, it } from "vitest";
import { openMemoryBackend } from "../../src/backends/memory/index.js";
import { composeApp } from "../../src/compose.js";
import { parseConfig } from "../../src/config.js";
import type { Run } from "../../src/core/jobs.js";
import { FakeClock } from "../helpers/clock.js";

describe("the fleet's sweep for interrupted runs", () => {
  it("a sweep still going when the App closes arms no timer after close", async () => {
    const clock = new FakeClock("2026-03-02T09:00:00.000Z");
    const backend = openMemoryBackend({ runsPerJob: 10, clock });
    let sweeps = 0;
    let finishSweep: (runs: Run[]) => void = () => {};
    // Like the postgres backend: looked for again every second while running.
    const orphans = {
      everyMs: 1000,
      claimOrphans: () => {
        sweeps++;
        // The first look is at start; the second is the sweep that close() overtakes.
        return sweeps === 1 ? Promise.resolve([]) : new Promise<Run[]>((resolve) => (finishSweep = resolve));
      },
    };
    // A fleet's queue stops with I/O (pg-boss): close() waits on it before the dispatcher closes.
    const stopQueue = backend.queue.close.bind(backend.queue);
    backend.queue.close = async () => {
      await new Promise((r) => setImmediate(r));
      await stopQueue();
    };
    const config = parseConfig({ timezone: "UTC", default_executor: "x", executors: { x: { type: "command", command: ["true"] } } });
    const dir = path.join(os.tmpdir(), "agent-cron-sweep-none");
    const app = await composeApp({ ...backend, orphans, exclusive: false }, { dataDir: dir, config, clock, workRoot: `${dir}-work`, executors: new Map() });
    await app.runtime.start();
    clock.advance(1000);
    expect(sweeps).toBe(2);
    const closing = app.runtime.close(0);
    finishSweep([]);
    await closing;
    await new Promise((r) => setImmediate(r));
    expect(clock.pendingTimers).toBe(0);
    clock.advance(10_000);
    expect(sweeps).toBe(2);
  });
});
