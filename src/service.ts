import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { UserError } from "./kernel/errors.js";

/**
 * `agent-cron service install | uninstall | status` (SPEC §17): a user-level service that
 * starts the data dir's owner at login and restarts it when it fails. A systemd user unit on
 * Linux, a launchd LaunchAgent on macOS. Everything is derived from HOME (and
 * XDG_CONFIG_HOME), so a test writes into a temp HOME; `--dry-run` writes nothing.
 */

export type Platform = "linux" | "macos";

export interface ServiceSpec {
  platform: Platform;
  dataDir: string;
  /** An explicit config file, passed on; null for the data dir's own. */
  configPath: string | null;
  /** Serve MCP over HTTP too (serve --http), instead of only owning the data dir. */
  http: boolean;
  node: string;
  cli: string;
  env: NodeJS.ProcessEnv;
  shutdownGraceSeconds: number;
}

export function platformOf(flag: string | undefined, actual: NodeJS.Platform = process.platform): Platform {
  const p = flag ?? (actual === "darwin" ? "macos" : actual === "linux" ? "linux" : undefined);
  if (p === "linux" || p === "macos") return p;
  if (flag !== undefined) throw new UserError(`--platform must be "linux" or "macos", got "${flag}".`);
  throw new UserError(
    `agent-cron service supports Linux (systemd) and macOS (launchd), not ${actual}; run agent-cron serve --http under your own service manager instead.`,
  );
}

/** The service's name: agent-cron for the default data dir, agent-cron-<hash> for another. */
export function serviceName(dataDir: string, env: NodeJS.ProcessEnv): string {
  const home = env.HOME || os.homedir();
  if (path.resolve(dataDir) === path.join(home, ".agent-cron")) return "agent-cron";
  return `agent-cron-${createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 8)}`;
}

export function serviceFile(spec: Pick<ServiceSpec, "platform" | "dataDir" | "env">): string {
  const home = spec.env.HOME || os.homedir();
  const name = serviceName(spec.dataDir, spec.env);
  if (spec.platform === "macos") return path.join(home, "Library", "LaunchAgents", `${launchdLabel(name)}.plist`);
  const config = spec.env.XDG_CONFIG_HOME || path.join(home, ".config");
  return path.join(config, "systemd", "user", `${name}.service`);
}

const launchdLabel = (name: string) => `io.github.agent-cron.${name}`;

/** The command line the service runs. */
function argv(spec: ServiceSpec): string[] {
  return [
    spec.node,
    spec.cli,
    "serve",
    ...(spec.http ? ["--http"] : ["--background", "--started-by", "service"]),
    "--data-dir",
    spec.dataDir,
    ...(spec.configPath ? ["--config", spec.configPath] : []),
  ];
}

/** systemd's quoting: each word in double quotes, with \ " and % escaped. */
const systemdWord = (w: string) => `"${w.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("%", "%%")}"`;

export function systemdUnit(spec: ServiceSpec): string {
  return [
    "# Written by agent-cron service install; agent-cron service uninstall removes it.",
    "[Unit]",
    `Description=agent-cron: scheduled agent work (${spec.http ? "HTTP daemon" : "background owner"} of ${spec.dataDir.replaceAll("%", "%%")})`,
    "Documentation=https://github.com/agent-cron/agent-cron#always-on",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${argv(spec).map(systemdWord).join(" ")}`,
    // The PATH of the install, so that claude, codex and the configured commands are found.
    `Environment=${systemdWord(`PATH=${spec.env.PATH ?? "/usr/local/bin:/usr/bin:/bin"}`)}`,
    // Taken as it is (no quotes), only % escaped.
    `WorkingDirectory=${spec.dataDir.replaceAll("%", "%%")}`,
    "Restart=on-failure",
    "RestartSec=5",
    // SIGTERM to the owner only: it lets its runs finish for shutdown_grace_seconds, then ends them.
    "KillMode=mixed",
    `TimeoutStopSec=${Math.ceil(spec.shutdownGraceSeconds) + 15}`,
    "",
    "[Install]",
    "WantedBy=default.target",
    "",
  ].join("\n");
}

const xml = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

export function launchdPlist(spec: ServiceSpec): string {
  const name = serviceName(spec.dataDir, spec.env);
  const str = (s: string) => `<string>${xml(s)}</string>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    "<dict>",
    `  <key>Label</key>${str(launchdLabel(name))}`,
    "  <key>ProgramArguments</key>",
    "  <array>",
    ...argv(spec).map((w) => `    ${str(w)}`),
    "  </array>",
    "  <key>EnvironmentVariables</key>",
    "  <dict>",
    `    <key>PATH</key>${str(spec.env.PATH ?? "/usr/local/bin:/usr/bin:/bin")}`,
    "  </dict>",
    `  <key>WorkingDirectory</key>${str(spec.dataDir)}`,
    "  <key>RunAtLoad</key><true/>",
    // Restarted when it fails; an owner that exits cleanly (agent-cron stop, a hand-over) stays down.
    "  <key>KeepAlive</key>",
    "  <dict>",
    "    <key>SuccessfulExit</key><false/>",
    "  </dict>",
    "  <key>ProcessType</key>" + str("Background"),
    `  <key>StandardErrorPath</key>${str(path.join(spec.dataDir, "logs", "launchd.log"))}`,
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
}

export interface ServiceReport {
  platform: Platform;
  name: string;
  file: string;
  action: "install" | "uninstall";
  dry_run: boolean;
  /** What was (or, with --dry-run, would be) written. */
  content: string | null;
  /** `systemd-analyze --user verify` on the unit, where it exists. */
  verify: { ran: boolean; ok: boolean; output: string } | null;
  /** The commands run to enable (or disable) it, each with how it went. */
  commands: { command: string; ok: boolean; output: string }[];
  notes: string[];
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeout = 15_000): Promise<{ ok: boolean; output: string; missing: boolean }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim();
      resolve({ ok: !err, output: output || (err ? err.message : ""), missing: (err as NodeJS.ErrnoException | null)?.code === "ENOENT" });
    });
  });
}

async function runAll(list: [string, string[]][], env: NodeJS.ProcessEnv): Promise<ServiceReport["commands"]> {
  const out: ServiceReport["commands"] = [];
  for (const [cmd, args] of list) {
    const r = await run(cmd, args, env);
    out.push({ command: [cmd, ...args].join(" "), ok: r.ok, output: r.output });
    if (!r.ok) break;
  }
  return out;
}

/**
 * Writes the unit (or plist), checks it, and unless `enable` is false turns it on. With
 * `dryRun`, only says what it would write and run.
 */
export async function installService(spec: ServiceSpec, opts: { dryRun: boolean; enable: boolean }): Promise<ServiceReport> {
  const file = serviceFile(spec);
  const name = serviceName(spec.dataDir, spec.env);
  const content = spec.platform === "macos" ? launchdPlist(spec) : systemdUnit(spec);
  const report: ServiceReport = {
    platform: spec.platform,
    name,
    file,
    action: "install",
    dry_run: opts.dryRun,
    content,
    verify: null,
    commands: [],
    notes: [],
  };
  const enable: [string, string[]][] =
    spec.platform === "macos"
      ? [["launchctl", ["bootstrap", `gui/${process.getuid?.() ?? 501}`, file]]]
      : [
          ["systemctl", ["--user", "daemon-reload"]],
          ["systemctl", ["--user", "enable", "--now", `${name}.service`]],
        ];
  if (opts.dryRun) {
    report.notes.push(`Nothing written (--dry-run). It would write ${file} and run: ${enable.map(([c, a]) => [c, ...a].join(" ")).join("; ")}.`);
    return report;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content, { mode: 0o644 });
  if (spec.platform === "linux") {
    // systemd-analyze --user needs a runtime dir; outside a login session (CI, a container) there is none.
    const runtime = spec.env.XDG_RUNTIME_DIR && existsSync(spec.env.XDG_RUNTIME_DIR) ? null : mkdtempSync(path.join(os.tmpdir(), "agent-cron-verify-"));
    const v = await run("systemd-analyze", ["--user", "verify", file], runtime ? { ...spec.env, XDG_RUNTIME_DIR: runtime } : spec.env);
    if (runtime) rmSync(runtime, { recursive: true, force: true });
    report.verify = v.missing ? { ran: false, ok: false, output: "systemd-analyze is not installed here" } : { ran: true, ok: v.ok, output: v.output };
  }
  if (opts.enable) {
    report.commands = await runAll(enable, spec.env);
    const failed = report.commands.find((c) => !c.ok);
    if (failed)
      report.notes.push(
        `"${failed.command}" failed (${failed.output.split("\n")[0]}); the ${spec.platform === "macos" ? "agent" : "unit"} is written, turn it on with: ${enable.map(([c, a]) => [c, ...a].join(" ")).join(" && ")}.`,
      );
  } else {
    report.notes.push(`Written, not turned on (--no-enable); turn it on with: ${enable.map(([c, a]) => [c, ...a].join(" ")).join(" && ")}.`);
  }
  if (spec.platform === "linux") report.notes.push(await lingerNote(spec.env));
  else report.notes.push("A LaunchAgent runs while you are logged in to the Mac; it starts again at your next login.");
  return report;
}

/** Whether the user's services run while they are logged out (systemd's linger). */
async function lingerNote(env: NodeJS.ProcessEnv): Promise<string> {
  const user = env.USER || env.LOGNAME || os.userInfo().username;
  const r = await run("loginctl", ["show-user", user, "--property=Linger"], env);
  if (r.ok && /Linger=yes/.test(r.output)) return `Lingering is on for ${user}: the service runs while you are logged out, and starts at boot.`;
  if (r.ok)
    return `The service runs only while ${user} is logged in; to run jobs while you are logged out (and from boot), run: loginctl enable-linger ${user}`;
  return `Could not ask loginctl whether lingering is on (${r.output.split("\n")[0] || "no answer"}); to run jobs while you are logged out, run: loginctl enable-linger ${user}`;
}

export async function uninstallService(
  spec: Pick<ServiceSpec, "platform" | "dataDir" | "env">,
  opts: { dryRun: boolean; enable: boolean },
): Promise<ServiceReport> {
  const file = serviceFile(spec);
  const name = serviceName(spec.dataDir, spec.env);
  const report: ServiceReport = {
    platform: spec.platform,
    name,
    file,
    action: "uninstall",
    dry_run: opts.dryRun,
    content: null,
    verify: null,
    commands: [],
    notes: [],
  };
  if (!existsSync(file)) {
    report.notes.push(`No service is installed for this data dir (${file} does not exist).`);
    return report;
  }
  const disable: [string, string[]][] =
    spec.platform === "macos"
      ? [["launchctl", ["bootout", `gui/${process.getuid?.() ?? 501}/${launchdLabel(name)}`]]]
      : [["systemctl", ["--user", "disable", "--now", `${name}.service`]]];
  if (opts.dryRun) {
    report.notes.push(`Nothing removed (--dry-run). It would run ${disable.map(([c, a]) => [c, ...a].join(" ")).join("; ")} and remove ${file}.`);
    return report;
  }
  if (opts.enable) report.commands = await runAll(disable, spec.env);
  rmSync(file, { force: true });
  if (spec.platform === "linux" && opts.enable) report.commands.push(...(await runAll([["systemctl", ["--user", "daemon-reload"]]], spec.env)));
  report.notes.push(
    `Removed ${file}. The owner it started is stopped${report.commands.every((c) => c.ok) ? "" : " once the service manager is told (see the commands above), or with agent-cron stop"}.`,
  );
  return report;
}

export interface InstalledService {
  platform: Platform;
  name: string;
  file: string;
  installed: boolean;
  /** serve --http, or the background owner. */
  http: boolean | null;
  /** What the service manager says (active, inactive, failed…); null where it cannot be asked. */
  state: string | null;
}

/** Reads back what install wrote, and asks the service manager how it is. */
export async function serviceStatus(spec: Pick<ServiceSpec, "platform" | "dataDir" | "env">): Promise<InstalledService> {
  const file = serviceFile(spec);
  const name = serviceName(spec.dataDir, spec.env);
  let text: string | null = null;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    text = null;
  }
  let state: string | null = null;
  if (text !== null) {
    const r =
      spec.platform === "macos"
        ? await run("launchctl", ["print", `gui/${process.getuid?.() ?? 501}/${launchdLabel(name)}`], spec.env)
        : await run("systemctl", ["--user", "is-active", `${name}.service`], spec.env);
    if (spec.platform === "linux" && !r.missing && /^(active|inactive|failed|activating|deactivating)$/m.test(r.output)) state = r.output.split("\n")[0];
    else if (spec.platform === "macos" && r.ok) state = /state = (\w+)/.exec(r.output)?.[1] ?? "loaded";
  }
  return { platform: spec.platform, name, file, installed: text !== null, http: text === null ? null : /"--http"|<string>--http<\/string>/.test(text), state };
}
