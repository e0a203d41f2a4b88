import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { liveProcessGroupCount, runProcess, type ProcessSpec } from "../../src/executors/process.js";
import { offThreadStarts } from "../../src/executors/spawner.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-spawner-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (argv: string[], over: Partial<ProcessSpec> = {}) =>
  runProcess({ argv, cwd: tmp, env: { PATH: process.env.PATH ?? "" }, timeoutMs: 60_000, killGraceMs: 1_000, maxOutputBytes: 1024 * 1024, ...over });

// Issue 27: a fleet's children start from worker threads, so that waiting for each exec does
// not hold the server's event loop. The results must be those of a child started on the main thread.
describe("children started in a burst", () => {
  it("move to worker threads and give the same stdin, stdout, stderr, exit codes and spawn errors", async () => {
    const before = offThreadStarts();
    const runs = Array.from({ length: 40 }, (_, i) =>
      i === 39
        ? run(["/nonexistent/agent-cron-missing"])
        : run(["sh", "-c", 'read line; echo "out $line"; echo "err $1" >&2; exit $1', "sh", String(i % 5)], { stdin: `in ${i}\n` }),
    );
    const results = await Promise.all(runs);
    expect(offThreadStarts() - before).toBeGreaterThan(0);
    results.slice(0, 39).forEach((r, i) => {
      expect(r).toMatchObject({ exitCode: i % 5, signal: null, stdout: `out in ${i}\n`, stderr: `err ${i % 5}\n`, spawnError: null, timedOut: false });
    });
    expect(results[39].spawnError).toBe('program "/nonexistent/agent-cron-missing" was not found (ENOENT)');
    expect(liveProcessGroupCount()).toBe(0);
  });

  it("stops a child started from a worker on timeout, its whole group", async () => {
    // The burst before this test left the workers in use: this child starts from one.
    const before = offThreadStarts();
    const r = await run(["sh", "-c", "sleep 30 & sleep 30"], { timeoutMs: 300, killGraceMs: 200 });
    expect(offThreadStarts() - before).toBe(1);
    expect(r).toMatchObject({ timedOut: true, exitCode: null });
    expect(r.signal === "SIGTERM" || r.signal === "SIGKILL").toBe(true);
    expect(liveProcessGroupCount()).toBe(0);
  });
});
