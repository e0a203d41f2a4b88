import { chmodSync, lstatSync, mkdirSync, realpathSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { UserError } from "../kernel/errors.js";
import { hasNoControlChars } from "./job-input.js";

/**
 * Where runs without a `work_dir` get their fresh folder: outside the data dir, so that an
 * agent working in its folder cannot wander into config.json, prompts or other runs'
 * outputs. `$XDG_CACHE_HOME/agent-cron/work`, else `~/.cache/agent-cron/work` (the XDG
 * default), else the OS temp dir; the folder is private to the user (mode 700).
 */
export function defaultWorkRoot(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, "agent-cron", "work");
  const home = env.HOME;
  if (home && path.isAbsolute(home) && process.platform !== "win32") return path.join(home, ".cache", "agent-cron", "work");
  const uid = typeof process.getuid === "function" ? process.getuid() : "user";
  return path.join(os.tmpdir(), `agent-cron-${uid}`, "work");
}

/**
 * Makes a folder only its owner can enter. A folder that is already there must be a real
 * directory of ours (not a link someone planted in a shared temp dir).
 */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const mine = typeof process.getuid !== "function" || st.uid === process.getuid();
  if (!st.isDirectory() || !mine) throw new Error(`${dir} is not a directory of this user's; remove it or set XDG_CACHE_HOME.`);
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/**
 * A work dir must exist and resolve (links followed) inside one of the configured roots.
 * Checked when a job is made or changed, and again before each run: a link can be repointed
 * and the roots can change after the job was made.
 */
export function resolveWorkDir(dir: string, roots: readonly string[], forbidden: readonly string[] = []): string {
  if (!roots.length) {
    throw new UserError(
      "work_dir is refused: the operator has configured no work_dir_roots. Leave work_dir out to use a fresh folder per run, or ask the operator to add a root to the config.",
    );
  }
  if (!path.isAbsolute(dir) || !hasNoControlChars(dir)) throw new UserError(`work_dir must be an absolute path, got "${dir}".`);
  let real: string;
  try {
    real = realpathSync(dir);
    if (!statSync(real).isDirectory()) throw new UserError(`work_dir "${dir}" is not a directory.`);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`work_dir "${dir}" does not exist; create it first.`);
  }
  const inside = roots.some((root) => {
    const r = realOrNull(root);
    return r !== null && isWithin(real, r);
  });
  if (!inside) throw new UserError(`work_dir "${dir}" is outside the allowed roots (${roots.join(", ")}).`);
  // The data dir and the default work dirs are the server's and other runs': a work_dir
  // there (or holding them) would hand a run the socket's secret and everyone's outputs.
  for (const f of forbidden) {
    const r = realOrNull(f);
    if (r !== null && (isWithin(real, r) || isWithin(r, real)))
      throw new UserError(`work_dir "${dir}" is or holds agent-cron's own data (${f}); choose a project folder.`);
  }
  return real;
}

/** `child` is `parent` or below it (both absolute and normalised). */
export function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

function realOrNull(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}
