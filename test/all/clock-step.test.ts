/**
 * A clock step (SPEC §17), for real: the owner runs under libfaketime (Debian's `faketime`,
 * installed by scripts/install-faketime.sh) with its wall clock read from a file the test
 * changes; its monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC), as when NTP or a
 * person steps the clock. Stepped 2 minutes ahead, it notices within 5 s, runs the newest
 * occurrence (catch_up "latest") and records the others missed with the reason "clock changed".
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TestServer, waitFor, type Structured } from "../helpers/server.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

function libfaketime(): string {
  for (const base of ["/usr/lib", "/usr/lib64"]) {
    if (!existsSync(base)) continue;
    for (const sub of ["", ...readdirSync(base)]) {
      const file = path.join(base, sub, "faketime", "libfaketimeMT.so.1");
      if (existsSync(file)) return file;
    }
  }
  throw new Error("libfaketime is not installed: run bash scripts/install-faketime.sh (apt-get install faketime).");
}

describe("the owner's wall clock stepped ahead (libfaketime)", () => {
  it("notices within 5 s: the newest occurrence runs, the others are recorded missed with reason clock changed", async () => {
    const lib = libfaketime();
    const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-faketime-"));
    cleanup.push(async () => rmSync(tmp, { recursive: true, force: true }));
    const offsetFile = path.join(tmp, "faketime.rc");
    writeFileSync(offsetFile, "+0\n");
    const s = await TestServer.start({
      env: { LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_NO_CACHE: "1", FAKETIME_DONT_FAKE_MONOTONIC: "1" },
    });
    cleanup.push(() => s.cleanup());
    await s.addJob({ name: "every20", schedule: "@every 20s", prompt: "tick", retries: 0 });
    const before = await s.tool("get_cron", { job: "every20" });
    expect(before.job.next_run_at).toBeTruthy();

    const steppedAt = Date.now();
    writeFileSync(offsetFile, "+2m\n");
    const runs = await s.waitForRuns(
      "every20",
      (rs) => rs.filter((r) => r.status === "missed").length >= 4 && rs.some((r) => r.trigger === "catch_up" && r.status === "completed") && rs,
      { timeout: 10_000, what: "the catch-up after the step" },
    );
    const seenAt = Date.now();
    const missed = runs.filter((r: Structured) => r.status === "missed");
    console.log(
      `clock-step: +2m written; records within ${seenAt - steppedAt} ms: ` +
        runs.map((r: Structured) => `${r.scheduled_for.slice(11, 23)} ${r.status}/${r.trigger}${r.error ? ` "${r.error}"` : ""}`).join("; "),
    );
    expect(seenAt - steppedAt).toBeLessThan(5000 + 1500);
    for (const r of missed) expect(r.error).toMatch(/^clock changed: /);
    expect(runs.filter((r: Structured) => r.trigger === "catch_up" && r.status !== "missed")).toHaveLength(1);
    const notice = await waitFor(() => s.notificationsOf("notifications/message").find((n) => /system clock was changed/.test(JSON.stringify(n.params))), {
      what: "the notice",
    });
    expect(JSON.stringify(notice.params)).toMatch(/\+1[12]\d s/);
  }, 60_000);
});
