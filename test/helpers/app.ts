import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach } from "vitest";
import { parseConfig, type Config } from "../../src/config.js";
import type { App } from "../../src/core/app.js";
import { composeApp, openApp } from "../../src/compose.js";
import { type MemoryStore, openMemoryBackend } from "../../src/backends/memory/index.js";
import { FakeClock } from "./clock.js";
import { ControlledExecutor } from "./fake-executor.js";

const apps: App[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.runtime.close(0);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * Where a test App keeps its jobs and runs. "files" is a real data dir in tmp; "memory" needs
 * none (the core's own tests). A backend outside this repo's Node-only tests (postgres) passes
 * its own `open`.
 */
export interface TestBackend {
  name: string;
  /** Opens an App on `store` (a previous App's, for a restart) or a fresh one. */
  open(opts: { config: Config; clock: FakeClock; exec: ControlledExecutor; store?: unknown }): Promise<{ app: App; store: unknown; dir: string }>;
}

export const filesBackend: TestBackend = {
  name: "files",
  async open({ config, clock, exec, store }) {
    const dir = (store as string | undefined) ?? mkdtempSync(path.join(os.tmpdir(), "agent-cron-app-"));
    if (!store) dirs.push(dir);
    const app = await openApp({ dataDir: dir, config, clock, executors: new Map([["fake", exec]]), workRoot: `${dir}-work` });
    if (!store) dirs.push(`${dir}-work`);
    return { app, store: dir, dir };
  },
};

export const memoryBackend: TestBackend = {
  name: "memory",
  async open({ config, clock, exec, store }) {
    const backend = openMemoryBackend({ store: store as MemoryStore | undefined, runsPerJob: config.runs_per_job, clock });
    const workRoot = mkdtempSync(path.join(os.tmpdir(), "agent-cron-work-"));
    dirs.push(workRoot);
    const app = await composeApp(
      { ...backend, exclusive: true },
      { dataDir: path.join(workRoot, "no-data-dir"), config, clock, executors: new Map([["fake", exec]]), workRoot },
    );
    return { app, store: backend.store, dir: "" };
  },
};

/**
 * An App with an injected clock and one in-process executor ("fake") as the default; closed
 * (and its files removed) after each test. `dir` reopens a files data dir, `store` any
 * backend's store (a restart); `config` is merged over the base.
 */
export async function openTestApp(
  opts: {
    backend?: TestBackend;
    dir?: string;
    store?: unknown;
    clock?: FakeClock;
    now?: string;
    exec?: ControlledExecutor;
    config?: Record<string, unknown>;
  } = {},
) {
  const backend = opts.backend ?? filesBackend;
  const clock = opts.clock ?? new FakeClock(opts.now ?? "2026-03-02T08:59:59.500Z");
  const exec = opts.exec ?? new ControlledExecutor();
  const config = parseConfig({
    timezone: "UTC",
    default_executor: "fake",
    executors: { fake: { type: "command", command: ["unused"] } },
    ...opts.config,
  });
  const { app, store, dir } = await backend.open({ config, clock, exec, store: opts.store ?? opts.dir });
  apps.push(app);
  return { app, clock, exec, dir, store, backend };
}

/** A test that closes an app itself (a restart) takes it off the list first. */
export function forget(app: App): void {
  const i = apps.indexOf(app);
  if (i >= 0) apps.splice(i, 1);
}
