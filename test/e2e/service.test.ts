/**
 * `agent-cron service install | uninstall | status` (SPEC §17), in a temp HOME: the systemd
 * user unit is written where it says, checked with `systemd-analyze --user verify` where that
 * is installed, read back by status, and its ExecStart, run as systemd would, starts an owner
 * that says it was started by the service. The macOS LaunchAgent is generated here as text
 * and checked as XML (a plist parser below) with its keys; launchctl itself is not tried.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, isAlive, makeDataDir, removeDir, runCli, waitFor } from "../helpers/server.js";
import { OwnerReaper, ownerOf } from "../helpers/owner.js";

const reaper = new OwnerReaper();
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  await reaper.reap();
});

function setup(): { home: string; dir: string; cli: (...args: string[]) => ReturnType<typeof runCli> } {
  const home = mkdtempSync(path.join(os.tmpdir(), "agent-cron-home-"));
  const dir = makeDataDir();
  reaper.remember(dir);
  cleanup.push(
    () => removeDir(home),
    () => removeDir(dir),
  );
  return { home, dir, cli: (...args) => runCli([...args, "--data-dir", dir], { env: { HOME: home } }) };
}

const hasSystemdAnalyze = (() => {
  try {
    execFileSync("systemd-analyze", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** systemd's ExecStart words ("a" "b" …), unquoted. */
function execStartOf(unit: string): string[] {
  const line = unit.split("\n").find((l) => l.startsWith("ExecStart="))!;
  return [...line.slice("ExecStart=".length).matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\(.)/g, "$1").replaceAll("%%", "%"));
}

type Plist = string | boolean | number | Plist[] | { [key: string]: Plist };

/**
 * A plist's XML, parsed strictly: the declaration and doctype, one <plist> root, and the
 * element kinds a LaunchAgent uses; any other tag, an unbalanced one, text outside an element
 * or a bad entity throws.
 */
function parsePlist(text: string): Plist {
  let rest = text.replace(
    /^<\?xml version="1\.0" encoding="UTF-8"\?>\s*<!DOCTYPE plist PUBLIC "-\/\/Apple\/\/DTD PLIST 1\.0\/\/EN" "http:\/\/www\.apple\.com\/DTDs\/PropertyList-1\.0\.dtd">\s*/,
    "",
  );
  if (rest === text) throw new Error("no XML declaration and plist doctype");
  const entity = (s: string) =>
    s.replace(/&(amp|lt|gt|quot|apos);|&|</g, (m, name) => {
      if (!name) throw new Error(`unescaped ${m} in ${s}`);
      return { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" }[name as string]!;
    });
  const take = (re: RegExp): RegExpExecArray => {
    const m = re.exec(rest);
    if (m?.index !== 0) throw new Error(`expected ${re} at: ${rest.slice(0, 60)}`);
    rest = rest.slice(m[0].length).replace(/^\s+/, "");
    return m;
  };
  const value = (): Plist => {
    if (rest.startsWith("<true/>")) return (take(/<true\/>/), true);
    if (rest.startsWith("<false/>")) return (take(/<false\/>/), false);
    if (rest.startsWith("<string>")) return entity(take(/<string>([^<]*)<\/string>/)[1]);
    if (rest.startsWith("<integer>")) return Number(take(/<integer>(-?\d+)<\/integer>/)[1]);
    if (rest.startsWith("<array>")) {
      take(/<array>/);
      const out: Plist[] = [];
      while (!rest.startsWith("</array>")) out.push(value());
      take(/<\/array>/);
      return out;
    }
    if (rest.startsWith("<dict>")) {
      take(/<dict>/);
      const out: Record<string, Plist> = {};
      while (!rest.startsWith("</dict>")) {
        const key = entity(take(/<key>([^<]*)<\/key>/)[1]);
        if (key in out) throw new Error(`duplicate key ${key}`);
        out[key] = value();
      }
      take(/<\/dict>/);
      return out;
    }
    throw new Error(`unexpected ${rest.slice(0, 40)}`);
  };
  take(/<plist version="1\.0">/);
  const root = value();
  take(/<\/plist>/);
  if (rest.trim()) throw new Error(`text after </plist>: ${rest.slice(0, 40)}`);
  return root;
}

describe("agent-cron service", () => {
  it("install writes a systemd user unit that verifies, status reads it back, and its ExecStart starts an owner that says it came from the service", async () => {
    const { home, dir, cli } = setup();
    const r = await cli("service", "install", "--no-enable", "--platform", "linux", "--json");
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.file.startsWith(path.join(home, ".config", "systemd", "user", "agent-cron-"))).toBe(true);
    expect(report.file.endsWith(".service")).toBe(true);
    const unit = readFileSync(report.file, "utf8");
    expect(unit).toBe(report.content);
    expect(execStartOf(unit)).toEqual([process.execPath, CLI, "serve", "--background", "--started-by", "service", "--data-dir", dir]);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^WantedBy=default\.target$/m);
    expect(unit).toContain(`WorkingDirectory=${dir}\n`);
    if (hasSystemdAnalyze) expect(report.verify).toEqual({ ran: true, ok: true, output: "" });
    else expect(report.verify).toMatchObject({ ran: false });
    // Not turned on, and the answer says how, and what lingering needs.
    expect(report.commands).toEqual([]);
    expect(report.notes.join(" ")).toMatch(/systemctl --user enable --now agent-cron-[0-9a-f]{8}\.service/);
    expect(report.notes.join(" ")).toMatch(/loginctl enable-linger \S+/);

    const st = await cli("service", "status", "--platform", "linux", "--json");
    expect(st.code, st.stderr).toBe(0);
    const status = JSON.parse(st.stdout);
    expect(status.service).toMatchObject({ installed: true, file: report.file, http: false });
    expect(status.owner).toBeNull();

    // What systemd would start.
    const [node, ...args] = execStartOf(unit);
    const child = spawn(node, args, { cwd: dir, detached: true, stdio: "ignore", env: { PATH: process.env.PATH ?? "", HOME: home } });
    child.unref();
    reaper.rememberPid(child.pid!);
    const owner = await waitFor(() => ownerOf(dir)?.started_as === "service" && ownerOf(dir), { timeout: 15_000, what: "the service's owner" });
    expect(owner.pid).toBe(child.pid);
    const add = await cli("add", "--name", "soon", "--schedule", "@every 1h", "--prompt", "p");
    expect(add.code, add.stderr).toBe(0);
    const again = JSON.parse((await cli("service", "status", "--platform", "linux", "--json")).stdout);
    expect(again.owner).toMatchObject({ pid: child.pid, started_as: "service" });
    expect(again.summary).toMatch(/started by its user service/);
    expect(again.next).toHaveLength(1);
    expect(again.next[0].name).toBe("soon");
    const human = await cli("service", "status", "--platform", "linux");
    expect(human.stdout).toMatch(new RegExp(`owner: pid ${child.pid}, agent-cron \\S+, up \\d+ s, started as service`));
    expect(human.stdout).toMatch(/next: \S+ soon/);

    const stop = await cli("stop");
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(/started by the user service/);
    expect(isAlive(child.pid!)).toBe(false);

    const un = await cli("service", "uninstall", "--no-enable", "--platform", "linux", "--json");
    expect(un.code, un.stderr).toBe(0);
    expect(existsSync(report.file)).toBe(false);
    expect(JSON.parse((await cli("service", "status", "--platform", "linux", "--json")).stdout).service.installed).toBe(false);
  }, 60_000);

  it("generates a launchd LaunchAgent for macOS: valid plist XML with the keys launchd reads; --dry-run writes nothing", async () => {
    const { home, dir, cli } = setup();
    const dry = await cli("service", "install", "--http", "--dry-run", "--platform", "macos", "--json");
    expect(dry.code, dry.stderr).toBe(0);
    const report = JSON.parse(dry.stdout);
    expect(report.file.startsWith(path.join(home, "Library", "LaunchAgents", "io.github.agent-cron.agent-cron-"))).toBe(true);
    expect(existsSync(report.file)).toBe(false);
    const plist = parsePlist(report.content) as Record<string, Plist>;
    expect(Object.keys(plist).sort()).toEqual([
      "EnvironmentVariables",
      "KeepAlive",
      "Label",
      "ProcessType",
      "ProgramArguments",
      "RunAtLoad",
      "StandardErrorPath",
      "WorkingDirectory",
    ]);
    expect(plist.Label).toBe(path.basename(report.file, ".plist"));
    expect(plist.ProgramArguments).toEqual([process.execPath, CLI, "serve", "--http", "--data-dir", dir]);
    expect(plist.RunAtLoad).toBe(true);
    expect(plist.KeepAlive).toEqual({ SuccessfulExit: false });
    expect(plist.WorkingDirectory).toBe(dir);
    expect((plist.EnvironmentVariables as Record<string, string>).PATH).toBe(process.env.PATH);
    // The parser is strict: it refuses what launchd would.
    expect(() => parsePlist(report.content.replace("</dict>\n</plist>", "</plist>"))).toThrow();
    expect(() => parsePlist(report.content.replace("<string>serve</string>", "<string>a & b</string>"))).toThrow();

    const written = await cli("service", "install", "--no-enable", "--platform", "macos", "--json");
    expect(written.code, written.stderr).toBe(0);
    const w = JSON.parse(written.stdout);
    expect((parsePlist(readFileSync(w.file, "utf8")) as Record<string, Plist>).ProgramArguments).toEqual([
      process.execPath,
      CLI,
      "serve",
      "--background",
      "--started-by",
      "service",
      "--data-dir",
      dir,
    ]);
    expect(JSON.parse((await cli("service", "status", "--platform", "macos", "--json")).stdout).service).toMatchObject({
      installed: true,
      file: w.file,
      http: false,
    });
    expect((await cli("service", "uninstall", "--no-enable", "--platform", "macos")).code).toBe(0);
    expect(existsSync(w.file)).toBe(false);
  });

  it("refuses an unknown action or platform with one clear line and exit 2", async () => {
    const { cli } = setup();
    const bad = await cli("service", "restart");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/service needs install, uninstall or status, got "restart"/);
    const plat = await cli("service", "install", "--platform", "windows");
    expect(plat.code).toBe(2);
    expect(plat.stderr).toMatch(/--platform must be "linux" or "macos"/);
  });
});
