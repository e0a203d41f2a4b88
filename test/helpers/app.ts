import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach } from "vitest";
import { parseConfig } from "../../src/config.js";
import { App } from "../../src/core/app.js";
import { FakeClock } from "./clock.js";
import { ControlledExecutor } from "./fake-executor.js";

const apps: App[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close(0);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * An App on a real data dir in tmp, with an injected clock and one in-process executor
 * ("fake") as the default; closed and removed after each test. `dir` reopens a data dir
 * (a restart); `config` is merged over the base.
 */
export async function openTestApp(opts: { dir?: string; clock?: FakeClock; now?: string; exec?: ControlledExecutor; config?: Record<string, unknown> } = {}) {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), "agent-cron-app-"));
  if (!opts.dir) dirs.push(dir);
  const clock = opts.clock ?? new FakeClock(opts.now ?? "2026-03-02T08:59:59.500Z");
  const exec = opts.exec ?? new ControlledExecutor();
  const config = parseConfig({
    timezone: "UTC",
    default_executor: "fake",
    executors: { fake: { type: "command", command: ["unused"] } },
    ...opts.config,
  });
  const app = await App.open({ dataDir: dir, config, clock, executors: new Map([["fake", exec]]) });
  apps.push(app);
  return { app, clock, exec, dir };
}

/** A test that closes an app itself (a restart) takes it off the list first. */
export function forget(app: App): void {
  const i = apps.indexOf(app);
  if (i >= 0) apps.splice(i, 1);
}
