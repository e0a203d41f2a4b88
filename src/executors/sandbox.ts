/**
 * The OS sandbox of executors that start a program (SPEC §16, §20): with `"sandbox": "auto"`
 * (the default) an attempt runs under bubblewrap when bubblewrap works on this host, and
 * without it (with a warning at start, in doctor and in add_cron answers) when it does not;
 * `"bwrap"` requires it; `"none"` never uses it. Under bubblewrap the run has its own user,
 * pid (and ipc) namespace, no capabilities, a read-only view of the system (the kernel's
 * tunables under /proc and /sys included), with HOME, /tmp and the owner's hidden paths (data
 * dir, config file, the root of default work dirs) replaced by empty tmpfs (files by an
 * unreadable /dev/null), and of the host's files only its work dir, its scratch dir and the
 * executor's own config (claude-code, codex) writable.
 *
 * Everything here works on real paths: mounts are applied in the order given to bwrap, so
 * the mount list is sorted by depth (a deeper mount is applied after, and wins over, the
 * mount of a directory that contains it). That is what keeps a work dir under a hidden root
 * writable, and a hidden data dir inside a bound work dir hidden.
 */
import { closeSync, openSync, readSync, realpathSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Config, ExecutorConfig } from "../config.js";
import { isWithin } from "../core/work-dirs.js";
import { resolveProgram, runProcess, type ProcessResult, type ProcessSpec } from "./process.js";

export type SandboxMode = "auto" | "none" | "bwrap";

/** The fd on which bwrap reports, as JSON, the program's start and exit (`--json-status-fd`). */
const STATUS_FD = 3;

/** One executor's sandbox, fixed when the executor is built from config. */
export interface SandboxSettings {
  /** "auto": only when bubblewrap works here (see bwrapWorksHere); "bwrap": always, or the run fails. */
  mode: "auto" | "bwrap";
  /** For messages: `executors.<name>.sandbox`. */
  executorName: string;
  /** The operator's `binds`: absolute paths, read-only unless suffixed `:rw`. */
  binds: readonly string[];
  /** False: a new network namespace, loopback only. */
  network: boolean;
  /** Absolute paths the run must not see (data dir, config file, default work root). */
  hiddenPaths: readonly string[];
  /** The bubblewrap program: a name looked up on the server's PATH, or a path. */
  bwrap: string;
}

/** What sandboxSettings needs of the executor context (src/executors/index.ts). */
export interface SandboxContext {
  hiddenPaths?: readonly string[];
  bwrapProgram?: string;
}

/**
 * The OS sandbox an executor's config asks for; executors that start no program have none.
 * Anything but "none" and "bwrap" is "auto", the default (a codex mode under `sandbox` too).
 */
export function sandboxMode(cfg: ExecutorConfig): SandboxMode {
  if (cfg.type === "openai" || cfg.sandbox === "none") return "none";
  return cfg.sandbox === "bwrap" ? "bwrap" : "auto";
}

/** The sandbox of one executor, or null when it runs its program as it is. */
export function sandboxSettings(name: string, cfg: ExecutorConfig, ctx: SandboxContext): SandboxSettings | null {
  const mode = sandboxMode(cfg);
  if (cfg.type === "openai" || mode === "none") return null;
  return {
    mode,
    executorName: name,
    binds: cfg.binds ?? [],
    network: cfg.network ?? true,
    hiddenPaths: ctx.hiddenPaths ?? [],
    bwrap: ctx.bwrapProgram ?? "bwrap",
  };
}

export interface WrapOptions {
  /** The bwrap program to start, as spawn takes it (best an absolute path). */
  bwrap: string;
  /** The executor type, which decides its own needs (claude-code: its config dir; codex: CODEX_HOME). */
  type: string;
  /** The child's environment, exactly as it will be passed: HOME, PATH, TMPDIR and the executor's config dirs are read from it. */
  env: Record<string, string>;
  /** The server user's home, hidden as well when the child's HOME differs. */
  serverHome?: string;
  workDir: string;
  scratchDir: string;
  hiddenPaths: readonly string[];
  binds: readonly string[];
  network: boolean;
  /**
   * The run's own tools server (SPEC §21), started by the agent inside the sandbox: its
   * programs stay reachable as the agent's own do, and the run's socket is bound in (it may
   * live outside the work dir, in the hidden /tmp, when the work dir's path is too long).
   */
  runTools?: { programs: readonly string[]; socket: string };
  /** The fd for `--json-status-fd`; default 3. */
  statusFd?: number;
}

type MountKind = "ro" | "rw" | "tmpfs" | "devnull" | "dev" | "proc";
interface Mount {
  kind: MountKind;
  path: string;
}

/** When two mounts name the same path, the stronger one is kept: a bind the run needs beats a hide. */
const STRENGTH: Record<MountKind, number> = { devnull: 1, tmpfs: 1, ro: 2, rw: 3, dev: 4, proc: 4 };
const isHide = (m: Mount) => m.kind === "tmpfs" || m.kind === "devnull";

/** One bind entry of the config: `"/path"` (read-only) or `"/path:rw"`; `":ro"` is accepted too. */
export function parseBind(spec: string): { path: string; rw: boolean } {
  const m = /:(rw|ro)$/.exec(spec);
  return { path: path.resolve(m ? spec.slice(0, -3) : spec), rw: m?.[1] === "rw" };
}

function depth(p: string): number {
  return p === "/" ? 0 : p.split("/").length - 1;
}

/** The link-resolved path and whether it is a directory, or null when nothing is there. */
function probe(p: string): { real: string; dir: boolean } | null {
  try {
    const real = realpathSync(p);
    return { real, dir: statSync(real).isDirectory() };
  } catch {
    return null;
  }
}

/** The program a script names on its `#!` line (`#!/usr/bin/env node` → node on PATH), or null. */
function interpreterOf(file: string, PATH: string | undefined): string | null {
  let head = "";
  try {
    const fd = openSync(file, "r");
    try {
      const buf = Buffer.alloc(256);
      head = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
  if (!head.startsWith("#!")) return null;
  const words = head.slice(2).split("\n")[0].trim().split(/\s+/).filter(Boolean);
  if (!words.length) return null;
  if (path.basename(words[0]) !== "env") return words[0];
  // `#!/usr/bin/env -S node --flag`: the first word that is not an option of env.
  const name = words.slice(1).find((w) => !w.startsWith("-") && !w.includes("="));
  return name ? resolveProgram(name, PATH) : words[0];
}

/** What each executor type needs writable: its own config and session files. */
function executorNeeds(type: string, env: Record<string, string>, home: string | undefined, cwd: string): string[] {
  const at = (p: string) => path.resolve(cwd, p);
  if (type === "claude-code") {
    if (env.CLAUDE_CONFIG_DIR) return [at(env.CLAUDE_CONFIG_DIR)];
    return home ? [path.join(home, ".claude"), path.join(home, ".claude.json")] : [];
  }
  if (type === "codex") {
    if (env.CODEX_HOME) return [at(env.CODEX_HOME)];
    return home ? [path.join(home, ".codex")] : [];
  }
  return [];
}

/**
 * The flags of every sandbox, before its mounts. When the server runs as root, bwrap keeps
 * every capability by default, and a program with CAP_SYS_ADMIN could simply unmount what
 * hides the data dir, or remount the system writable: --cap-drop ALL takes them away, and
 * --unshare-user puts the run in a user namespace of its own, so that whatever it gains there
 * is no capability over the host's namespaces (a write to /proc/sys/kernel/hostname needs
 * CAP_SYS_ADMIN over the host's). No --new-session: it would take the program out of the
 * process group that runProcess signals on timeout and cancel; the group has no terminal
 * anyway (spawned detached, so setsid). --die-with-parent: the sandbox, and every process in
 * its pid namespace, dies with the server, even of kill -9.
 */
function baseFlags(network: boolean, statusFd: number): string[] {
  return [
    "--die-with-parent",
    "--unshare-user",
    "--cap-drop",
    "ALL",
    "--unshare-pid",
    "--unshare-ipc",
    ...(network ? [] : ["--unshare-net"]),
    "--json-status-fd",
    String(statusFd),
    "--ro-bind",
    "/",
    "/",
  ];
}

/**
 * The argv that runs `argv` under bubblewrap. `argv[0]` must be the program's absolute path
 * (see resolveProgram): bwrap would otherwise look it up inside the sandbox. Paths that do not
 * exist are skipped, except the operator's binds, which bwrap then refuses with its reason.
 */
/**
 * The kernel's knobs in the sandbox's fresh /proc, bound read-only over it (as container
 * runtimes do): the files there are root's, and a root server's run is root (uid 0) to their
 * permission bits even in its own user namespace. /sys is read-only with the rest of the
 * system (the recursive --ro-bind of /).
 */
const KERNEL_TUNABLES = ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"];

/** Sockets outside the runtime dir that would let a run act as the user outside the sandbox. */
const SESSION_SOCKETS = ["/run/dbus", "/var/run/dbus", "/run/docker.sock", "/var/run/docker.sock", "/run/systemd/private"];

export function wrapInSandbox(argv: readonly string[], opts: WrapOptions): string[] {
  const program = argv[0];
  if (!program || !path.isAbsolute(program)) throw new Error(`wrapInSandbox needs the program's absolute path, got "${program ?? ""}"`);
  const { env } = opts;
  const mounts: Mount[] = [
    { kind: "dev", path: "/dev" },
    { kind: "proc", path: "/proc" },
    { kind: "tmpfs", path: "/tmp" },
  ];
  const hide = (p: string | undefined) => {
    if (!p || !path.isAbsolute(p)) return;
    const found = probe(p);
    if (!found || found.real === "/") return;
    mounts.push({ kind: found.dir ? "tmpfs" : "devnull", path: found.real });
  };
  const bind = (p: string, rw: boolean, mustExist: boolean) => {
    const found = probe(p);
    if (found) mounts.push({ kind: rw ? "rw" : "ro", path: found.real });
    else if (mustExist) mounts.push({ kind: rw ? "rw" : "ro", path: p });
  };

  // A private TMPDIR when it points elsewhere than /tmp, so that programs can still write there.
  if (env.TMPDIR && probe(env.TMPDIR)?.dir) hide(env.TMPDIR);
  // HOME holds the user's keys and tokens: the run gets an empty one (writable, thrown away).
  const home = env.HOME && path.isAbsolute(env.HOME) ? env.HOME : undefined;
  hide(home);
  if (opts.serverHome && opts.serverHome !== home) hide(opts.serverHome);
  for (const p of opts.hiddenPaths) hide(p);
  // Unix sockets stay connectable under a read-only bind: the user's session bus and systemd
  // (`systemd-run --user` would run a command outside the sandbox), the ssh and gpg agents
  // under the runtime dir, and Docker's socket are taken away.
  hide("/run/user");
  hide(env.XDG_RUNTIME_DIR);
  for (const p of SESSION_SOCKETS) hide(p);

  const hidden = mounts.filter(isHide).map((m) => m.path);
  const underHidden = (p: string) => hidden.some((h) => isWithin(p, h));
  // The program and its interpreter must stay reachable when they live under a hidden path
  // (an npm or nvm install in HOME). A simple rule: bind the directory above the program's own
  // directory (for `~/.npm/lib/node_modules/pkg/bin/cli.js`, the package `pkg`; for
  // `~/.nvm/versions/node/v22/bin/node`, that Node install), unless that would bring a whole
  // hidden root back; then only the program's directory, or the program alone.
  for (const p of [program, interpreterOf(program, env.PATH), ...(opts.runTools?.programs ?? [])]) {
    const real = p ? probe(p)?.real : undefined;
    if (!real || !underHidden(real)) continue;
    const candidates = [path.dirname(path.dirname(real)), path.dirname(real), real];
    const target = candidates.find((c) => !hidden.some((h) => isWithin(h, c))) ?? real;
    bind(target, false, false);
  }
  for (const p of executorNeeds(opts.type, env, home ?? opts.serverHome, opts.workDir)) bind(p, true, false);
  for (const spec of opts.binds) {
    const b = parseBind(spec);
    bind(b.path, b.rw, true);
  }
  for (const p of KERNEL_TUNABLES) bind(p, false, false);
  bind(opts.scratchDir, true, true);
  bind(opts.workDir, true, true);
  if (opts.runTools) bind(opts.runTools.socket, true, false);

  // One mount per path, the strongest; then shallow to deep, so the deeper one wins.
  const byPath = new Map<string, Mount>();
  for (const m of mounts) {
    const had = byPath.get(m.path);
    if (!had || STRENGTH[m.kind] > STRENGTH[had.kind]) byPath.set(m.path, m);
  }
  const ordered = [...byPath.values()].sort((a, b) => depth(a.path) - depth(b.path));
  const kept: Mount[] = [];
  for (const m of ordered) {
    // A hide inside a directory that is already hidden adds nothing.
    const parent = kept.filter((k) => k.path !== m.path && isWithin(m.path, k.path)).at(-1);
    if (isHide(m) && parent && parent.kind === "tmpfs") continue;
    kept.push(m);
  }

  const args = [opts.bwrap, ...baseFlags(opts.network, opts.statusFd ?? STATUS_FD)];
  for (const m of kept) {
    switch (m.kind) {
      case "dev":
        args.push("--dev", m.path);
        break;
      case "proc":
        args.push("--proc", m.path);
        break;
      case "tmpfs":
        args.push("--tmpfs", m.path);
        break;
      case "devnull":
        args.push("--ro-bind", "/dev/null", m.path);
        break;
      case "ro":
        args.push("--ro-bind", m.path, m.path);
        break;
      case "rw":
        args.push("--bind", m.path, m.path);
        break;
    }
  }
  args.push("--chdir", probe(opts.workDir)?.real ?? opts.workDir, "--", ...argv);
  return args;
}

/**
 * Why bwrap ended without the program having run, or null when the program ran (bwrap's
 * status fd carries an "exit-code" only for a program it started) or the run was stopped.
 */
export function sandboxFailure(proc: ProcessResult): string | null {
  // Stopped by us: a run killed for passing a limit had started, whatever bwrap could not report.
  if (proc.timedOut || proc.canceled || proc.limitError) return null;
  if (proc.spawnError) return `bwrap could not be started: ${proc.spawnError}`;
  if (/"exit-code"\s*:/.test(proc.status ?? "") || proc.exitCode === 0) return null;
  const own = proc.stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("bwrap:"))
    .at(-1);
  const how = proc.exitCode === null ? `was killed by ${proc.signal}` : `exited with code ${proc.exitCode}`;
  return own ?? `bwrap ${how} before the program started`;
}

function notStarted(spawnError: string | null): ProcessResult {
  return {
    exitCode: null,
    signal: null,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    timedOut: false,
    canceled: false,
    spawnError,
    durationMs: 0,
  };
}

/** The sentence runProcess would give for a program that spawn cannot find or run. */
function missingProgram(program: string, cwd: string): string {
  const file = program.includes("/") ? path.resolve(cwd, program) : null;
  const there = file ? probe(file) : null;
  return there && !there.dir ? `program "${program}" is not executable (EACCES)` : `program "${program}" was not found (ENOENT)`;
}

/**
 * Runs one attempt under the executor's sandbox: the same spec as runProcess (env, stdin,
 * timeout, cancel, output caps, process-group kill), with bwrap as the group leader. A sandbox
 * that cannot start is reported in `sandboxError`, one sentence naming the config key and fix.
 */
export async function runSandboxed(
  spec: ProcessSpec,
  settings: SandboxSettings,
  extra: { type: string; scratchDir: string; serverEnv: NodeJS.ProcessEnv; runTools?: WrapOptions["runTools"] },
): Promise<ProcessResult & { sandboxError: string | null }> {
  const key = `executors.${settings.executorName}.sandbox`;
  // "auto" where bubblewrap does not work: the run goes on without it, as start-up, doctor and
  // add_cron said it would (autoSandboxWarning).
  if (settings.mode === "auto" && !(await bwrapWorksHere(settings.bwrap, extra.serverEnv)).ok) return { ...(await runProcess(spec)), sandboxError: null };
  // As runProcess says it, and not a sandbox failure: the next attempt may find it.
  if (!probe(spec.cwd)?.dir) return { ...notStarted(`working directory ${spec.cwd} does not exist`), sandboxError: null };
  // Resolved here, on the child's PATH as spawn would, so that bwrap gets an absolute path and
  // a missing program is reported as such (not as a sandbox failure).
  const program = resolveProgram(spec.argv[0] ?? "", spec.env.PATH, spec.cwd);
  if (!program) return { ...notStarted(missingProgram(spec.argv[0] ?? "", spec.cwd)), sandboxError: null };
  const bwrap = resolveProgram(settings.bwrap, extra.serverEnv.PATH);
  if (!bwrap) {
    return {
      ...notStarted(null),
      sandboxError: `its sandbox (${key} is "bwrap") needs bubblewrap, and "${settings.bwrap}" is not installed here. Install it (apt-get install bubblewrap) or set ${key} to "none".`,
    };
  }
  const argv = wrapInSandbox([program, ...spec.argv.slice(1)], {
    bwrap,
    type: extra.type,
    env: spec.env,
    serverHome: extra.serverEnv.HOME || os.homedir(),
    workDir: spec.cwd,
    scratchDir: extra.scratchDir,
    hiddenPaths: settings.hiddenPaths,
    binds: settings.binds,
    network: settings.network,
    ...(extra.runTools ? { runTools: extra.runTools } : {}),
    statusFd: STATUS_FD,
  });
  // bwrap dies of SIGTERM and takes the sandbox with it: the program gets the SIGTERM itself.
  const proc = await runProcess({ ...spec, argv, statusFd: true, termSparesLeader: true, hardFileCap: true });
  const why = sandboxFailure(proc);
  if (!why) return { ...proc, sandboxError: null };
  return {
    ...proc,
    // The program never ran: what bwrap said is not the program's error.
    spawnError: null,
    sandboxError:
      `bubblewrap refused its sandbox (${key} is "bwrap"): ${why}. ` +
      `Fix executors.${settings.executorName}.binds if it names that path, run agent-cron doctor to check bubblewrap (apt-get install bubblewrap), or set ${key} to "none".`,
  };
}

/** Whether bubblewrap can start a sandbox here, as `doctor` reports it. */
export interface SandboxCheck {
  ok: boolean;
  status: "ok" | "missing" | "error";
  /** The resolved bwrap, or the name that was looked for. */
  program: string;
  version: string | null;
  detail: string;
}

/**
 * Starts a throw-away sandbox with the flags every run uses (pid, ipc and network namespaces,
 * read-only system, fresh /dev and /proc, private /tmp) and says whether it worked.
 */
export async function bwrapAvailable(opts: { program?: string; env?: NodeJS.ProcessEnv } = {}): Promise<SandboxCheck> {
  const env = opts.env ?? process.env;
  const name = opts.program ?? "bwrap";
  const bwrap = resolveProgram(name, env.PATH);
  if (!bwrap) {
    return {
      ok: false,
      status: "missing",
      program: name,
      version: null,
      detail: `bubblewrap is not installed ("${name}" is not on PATH); install it with apt-get install bubblewrap.`,
    };
  }
  const base = { cwd: os.tmpdir(), env: { PATH: env.PATH ?? "/usr/bin:/bin" }, stdin: null, timeoutMs: 5_000, killGraceMs: 500, maxOutputBytes: 64 * 1024 };
  const ver = await runProcess({ ...base, argv: [bwrap, "--version"] });
  const version = ver.exitCode === 0 ? ver.stdout.trim().split("\n")[0]?.trim() || null : null;
  const proc = await runProcess({
    ...base,
    statusFd: true,
    argv: [bwrap, ...baseFlags(false, STATUS_FD), "--dev", "/dev", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--tmpfs", "/tmp", "--", "true"],
  });
  if (proc.exitCode === 0 && /"exit-code"\s*:\s*0/.test(proc.status ?? "")) {
    return {
      ok: true,
      status: "ok",
      program: bwrap,
      version,
      detail: "bubblewrap works here: a test sandbox started (own user, pid and network namespace, no capabilities, read-only system).",
    };
  }
  const why = proc.timedOut
    ? "the test sandbox did not finish within 5 s"
    : (sandboxFailure(proc) ?? `the test sandbox exited with code ${proc.exitCode ?? proc.signal}`);
  return { ok: false, status: "error", program: bwrap, version, detail: `bubblewrap is installed but cannot start a sandbox here: ${why}.` };
}

const checks = new Map<string, Promise<SandboxCheck>>();

/**
 * bwrapAvailable, tried once per program and PATH for the life of the process: "auto" asks
 * before every run, and a trial sandbox costs two process starts.
 */
export function bwrapWorksHere(program: string, env: NodeJS.ProcessEnv): Promise<SandboxCheck> {
  const key = `${program}\0${env.PATH ?? ""}`;
  let check = checks.get(key);
  if (!check) checks.set(key, (check = bwrapAvailable({ program, env })));
  return check;
}

/**
 * What to tell the operator (at start, in doctor) and the model (add_cron answers) about an
 * executor left on "sandbox": "auto" where bubblewrap does not work: its runs go unsandboxed.
 * Null when the executor is sandboxed, or said "none" itself.
 */
export async function autoSandboxWarning(settings: SandboxSettings | null, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (settings?.mode !== "auto") return null;
  const check = await bwrapWorksHere(settings.bwrap, env);
  if (check.ok) return null;
  const key = `executors.${settings.executorName}.sandbox`;
  return `Executor "${settings.executorName}" runs without a sandbox (${key} is "auto" and ${check.detail.replace(/\.$/, "")}): its runs can read and write what the server's user can. Install bubblewrap, or set ${key} to "none" to accept that.`;
}

/**
 * A note for the server to print at start-up: bubblewrap works here, yet some program
 * executors run without it. Null when there is nothing to say.
 */
export function sandboxStartupNote(config: Pick<Config, "executors">, env: NodeJS.ProcessEnv = process.env): string | null {
  const open = Object.entries(config.executors)
    .filter(([, cfg]) => cfg.type !== "openai" && sandboxMode(cfg) === "none")
    .map(([name]) => name);
  if (!open.length) return null;
  // A PATH lookup, not a trial run: this is said at every start, and doctor runs the real check.
  if (!resolveProgram("bwrap", env.PATH)) return null;
  return `bubblewrap is available: remove "sandbox": "none" from an executor (or set "auto") to isolate its runs (not sandboxed now: ${open.join(", ")}).`;
}
