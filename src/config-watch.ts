import { existsSync, watch, type FSWatcher } from "node:fs";
import path from "node:path";
import { loadConfig, type Config } from "./config.js";
import { errorMessage } from "./kernel/errors.js";

const SETTLE_MS = 200;
const APPROVAL_RANK: Record<Config["approval"], number> = { none: 0, ask: 1, required: 2 };

/** The settings a notice about the kept config names, so a person sees what stays in force. */
function summary(config: Config): string {
  return `approval "${config.approval}", executors ${Object.keys(config.executors).join(", ") || "none"}, max_concurrent ${config.max_concurrent}`;
}

export interface ConfigWatch {
  close(): void;
}

/**
 * Watches config.json and hands every valid edit to `apply`; an invalid one keeps the running
 * config and is reported through `reject`, with the reason. The folder is watched, not the
 * file, so an editor's save-by-rename and a file created after start are both seen.
 */
export function watchConfig(opts: {
  dataDir: string;
  explicitPath?: string;
  current: Config;
  apply: (config: Config, changedKeys: string[]) => void;
  reject: (message: string) => void;
}): ConfigWatch {
  const file = opts.explicitPath ? path.resolve(opts.explicitPath) : path.join(opts.dataDir, "config.json");
  let last = JSON.stringify(opts.current);
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher | null = null;
  const reload = () => {
    timer = null;
    let next: Config;
    const running = JSON.parse(last) as Config;
    // A config file that goes away is not a wish for the defaults (approval "none", the
    // default executor): it may be a slip, or a run without a sandbox (SPEC §20).
    if (!existsSync(file)) {
      opts.reject(
        `The config file ${file} was removed; the running config is kept (${summary(running)}). Put it back, or restart agent-cron to run without one.`,
      );
      return;
    }
    try {
      next = loadConfig(opts.dataDir, opts.explicitPath).config;
    } catch (err) {
      opts.reject(`${errorMessage(err)} The running config is kept (${summary(running)}).`);
      return;
    }
    // Approval is a person's safeguard against agents: an edit of a file never lowers it
    // while running (a run without a sandbox can write the file); a restart, a person's act, does.
    if (APPROVAL_RANK[next.approval] < APPROVAL_RANK[running.approval]) {
      opts.reject(
        `The config file ${file} lowers approval from "${running.approval}" to "${next.approval}"; a running agent-cron keeps "${running.approval}". Restart agent-cron to apply it.`,
      );
      next = { ...next, approval: running.approval };
    }
    const text = JSON.stringify(next);
    if (text === last) return;
    const before = JSON.parse(last) as Record<string, unknown>;
    const changed = Object.keys({ ...before, ...next }).filter((k) => JSON.stringify(before[k]) !== JSON.stringify((next as Record<string, unknown>)[k]));
    last = text;
    opts.apply(next, changed);
  };
  try {
    watcher = watch(path.dirname(file), { persistent: false }, (_event, name) => {
      if (name !== null && name !== path.basename(file)) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(reload, SETTLE_MS);
      timer.unref();
    });
    watcher.on("error", () => {});
  } catch (err) {
    opts.reject(`Cannot watch ${file} for changes (${errorMessage(err)}); edits apply at the next start.`);
  }
  return {
    close() {
      if (timer) clearTimeout(timer);
      watcher?.close();
    },
  };
}
