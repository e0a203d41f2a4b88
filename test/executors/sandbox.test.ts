/**
 * The sandbox's argv and config, without bubblewrap: what wrapInSandbox asks bwrap to mount,
 * in which order, and what the config accepts. The real sandbox is tested in
 * test/all/sandbox.test.ts (npm run test:all, which installs bubblewrap).
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { executorConfigSchema, parseConfig, type CodexExecutorConfig } from "../../src/config.js";
import { doctor } from "../../src/doctor.js";
import { codexSandboxMode } from "../../src/executors/codex.js";
import { createExecutor } from "../../src/executors/index.js";
import type { ProcessResult } from "../../src/executors/process.js";
import { parseBind, sandboxFailure, sandboxMode, sandboxSettings, wrapInSandbox, type WrapOptions } from "../../src/executors/sandbox.js";
import { fixture, makeRequest, sandboxTestDir } from "./helpers.js";

// Outside /tmp and HOME (see sandboxTestDir): the sandbox hides both whole.
const base = sandboxTestDir("agent-cron-sandbox-unit-");
const home = path.join(base, "home");
const dataDir = path.join(base, "data");
const configFile = path.join(base, "agent-cron.json");
const workRoot = path.join(base, "work");
const runDir = path.join(workRoot, "run-1");
const missing = path.join(base, "missing");

beforeAll(() => {
  for (const d of [path.join(home, ".claude"), path.join(home, ".codex"), dataDir, runDir]) mkdirSync(d, { recursive: true });
  writeFileSync(path.join(home, ".claude.json"), "{}");
  writeFileSync(configFile, "{}");
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function wrap(argv: string[], over: Partial<WrapOptions> = {}): string[] {
  return wrapInSandbox(argv, {
    bwrap: "/usr/bin/bwrap",
    type: "command",
    env: { HOME: home, PATH: "/usr/bin:/bin" },
    workDir: runDir,
    scratchDir: runDir,
    hiddenPaths: [dataDir, configFile, workRoot, missing],
    binds: [],
    network: true,
    ...over,
  });
}

/** The mounts of a bwrap argv, in order, as "kind path": ro, rw, tmpfs, devnull, dev, proc. */
function mounts(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length && args[i] !== "--"; i++) {
    const a = args[i];
    if (a === "--tmpfs" || a === "--dev" || a === "--proc") out.push(`${a.slice(2)} ${args[++i]}`);
    else if (a === "--bind") out.push(`rw ${args[(i += 2)]}`);
    else if (a === "--ro-bind") {
      const src = args[++i];
      const dest = args[++i];
      out.push(src === "/dev/null" ? `devnull ${dest}` : `ro ${dest}`);
    }
  }
  return out;
}

const expectAfter = (list: string[], later: string, earlier: string) => {
  expect(list).toContain(later);
  expect(list).toContain(earlier);
  expect(list.indexOf(later)).toBeGreaterThan(list.indexOf(earlier));
};

describe("wrapInSandbox", () => {
  it("starts bwrap with its own pid namespace, a read-only system, fresh /dev, /proc and /tmp, and the program last", () => {
    const args = wrap(["/usr/bin/node", "agent.mjs", "--flag"]);
    expect(args[0]).toBe("/usr/bin/bwrap");
    expect(args).toContain("--die-with-parent");
    // Root keeps every capability in bwrap unless told otherwise, and could unmount the hides.
    expect(args.slice(args.indexOf("--cap-drop"), args.indexOf("--cap-drop") + 2)).toEqual(["--cap-drop", "ALL"]);
    expect(args).toContain("--unshare-pid");
    expect(args).not.toContain("--unshare-net");
    expect(args).not.toContain("--new-session");
    expect(args.slice(args.indexOf("--json-status-fd"), args.indexOf("--json-status-fd") + 2)).toEqual(["--json-status-fd", "3"]);
    const m = mounts(args);
    expect(m[0]).toBe("ro /");
    expect(m.slice(1, 4)).toEqual(["dev /dev", "proc /proc", "tmpfs /tmp"]);
    expect(args.slice(args.indexOf("--"))).toEqual(["--", "/usr/bin/node", "agent.mjs", "--flag"]);
    expect(args.slice(args.indexOf("--chdir"), args.indexOf("--chdir") + 2)).toEqual(["--chdir", runDir]);
  });

  it("hides HOME and the hidden paths (directories as tmpfs, files as /dev/null, missing ones skipped), then binds the work dir writable", () => {
    const m = mounts(wrap(["/usr/bin/node"]));
    expect(m).toContain(`tmpfs ${home}`);
    expect(m).toContain(`tmpfs ${dataDir}`);
    expect(m).toContain(`devnull ${configFile}`);
    expect(m).toContain(`tmpfs ${workRoot}`);
    expect(m.join("\n")).not.toContain(missing);
    // The work dir is under a hidden root: its bind must come after, or it would be hidden too.
    expectAfter(m, `rw ${runDir}`, `tmpfs ${workRoot}`);
    expect(m.filter((x) => x === `rw ${runDir}`)).toHaveLength(1);
  });

  it("hides a hidden path inside the work dir after binding the work dir", () => {
    const inner = path.join(runDir, ".agent-cron");
    mkdirSync(inner, { recursive: true });
    const m = mounts(wrap(["/usr/bin/node"], { hiddenPaths: [inner] }));
    expectAfter(m, `tmpfs ${inner}`, `rw ${runDir}`);
    rmSync(inner, { recursive: true });
  });

  it('"network": false unshares the network', () => {
    expect(wrap(["/usr/bin/node"], { network: false })).toContain("--unshare-net");
  });

  it("binds the operator's paths read-only, or writable with :rw, after the hides that contain them", () => {
    const shared = path.join(dataDir, "shared");
    mkdirSync(shared, { recursive: true });
    const m = mounts(wrap(["/usr/bin/node"], { binds: [shared, `${runDir}:ro`, "/opt/not-there:rw"] }));
    expectAfter(m, `ro ${shared}`, `tmpfs ${dataDir}`);
    // A missing bind is passed on: bwrap refuses it, and the run fails with its reason.
    expect(m).toContain("rw /opt/not-there");
    // The work dir stays writable even when a bind names it read-only.
    expect(m).toContain(`rw ${runDir}`);
    expect(m).not.toContain(`ro ${runDir}`);
  });

  it("binds claude-code's config dir and file writable inside the empty HOME, or $CLAUDE_CONFIG_DIR alone", () => {
    const m = mounts(wrap(["/usr/bin/node"], { type: "claude-code" }));
    expectAfter(m, `rw ${path.join(home, ".claude")}`, `tmpfs ${home}`);
    expectAfter(m, `rw ${path.join(home, ".claude.json")}`, `tmpfs ${home}`);
    expect(m).not.toContain(`rw ${path.join(home, ".codex")}`);

    const own = path.join(base, "claude-config");
    mkdirSync(own, { recursive: true });
    const m2 = mounts(wrap(["/usr/bin/node"], { type: "claude-code", env: { HOME: home, PATH: "/usr/bin", CLAUDE_CONFIG_DIR: own } }));
    expect(m2).toContain(`rw ${own}`);
    expect(m2).not.toContain(`rw ${path.join(home, ".claude")}`);
  });

  it("binds codex's CODEX_HOME, or ~/.codex, writable", () => {
    expect(mounts(wrap(["/usr/bin/node"], { type: "codex" }))).toContain(`rw ${path.join(home, ".codex")}`);
    const codexHome = path.join(base, "codex-home");
    mkdirSync(codexHome, { recursive: true });
    const m = mounts(wrap(["/usr/bin/node"], { type: "codex", env: { HOME: home, CODEX_HOME: codexHome } }));
    expect(m).toContain(`rw ${codexHome}`);
    expect(m).not.toContain(`rw ${path.join(home, ".codex")}`);
  });

  it("keeps a program under HOME reachable: its package dir, or its own dir when that would expose HOME", () => {
    const pkg = path.join(home, ".npm-global", "lib", "node_modules", "agent");
    mkdirSync(path.join(pkg, "bin"), { recursive: true });
    const cli = path.join(pkg, "bin", "cli.js");
    writeFileSync(cli, "#!/usr/bin/env node\n");
    chmodSync(cli, 0o755);
    const m = mounts(wrap([cli]));
    expectAfter(m, `ro ${pkg}`, `tmpfs ${home}`);

    mkdirSync(path.join(home, "bin"), { recursive: true });
    const tool = path.join(home, "bin", "tool");
    writeFileSync(tool, "#!/bin/sh\n");
    chmodSync(tool, 0o755);
    const m2 = mounts(wrap([tool]));
    expect(m2).toContain(`ro ${path.join(home, "bin")}`);
    expect(m2).not.toContain(`ro ${home}`);
  });

  it("keeps a script's interpreter under HOME reachable (an nvm Node)", () => {
    const nodeDir = path.join(home, ".nvm", "versions", "node", "v22.0.0");
    mkdirSync(path.join(nodeDir, "bin"), { recursive: true });
    writeFileSync(path.join(nodeDir, "bin", "node"), "");
    chmodSync(path.join(nodeDir, "bin", "node"), 0o755);
    const script = path.join(base, "agent.mjs");
    writeFileSync(script, "#!/usr/bin/env node\n");
    chmodSync(script, 0o755);
    const m = mounts(wrap([script], { env: { HOME: home, PATH: `${path.join(nodeDir, "bin")}:/usr/bin` } }));
    expectAfter(m, `ro ${nodeDir}`, `tmpfs ${home}`);
    // The script itself is not under a hidden path: nothing to bind for it.
    expect(m).not.toContain(`ro ${base}`);
  });

  it("hides the server user's HOME too when the child's differs, and a TMPDIR outside /tmp", () => {
    const serverHome = path.join(base, "server-home");
    const tmpdir = path.join(base, "tmpdir");
    mkdirSync(serverHome, { recursive: true });
    mkdirSync(tmpdir, { recursive: true });
    const m = mounts(wrap(["/usr/bin/node"], { serverHome, env: { HOME: home, TMPDIR: tmpdir } }));
    expect(m).toContain(`tmpfs ${serverHome}`);
    expect(m).toContain(`tmpfs ${home}`);
    expect(m).toContain(`tmpfs ${tmpdir}`);
  });

  it("needs the program's absolute path", () => {
    expect(() => wrap(["node"])).toThrow(/absolute path/);
  });
});

describe("sandboxFailure", () => {
  const proc = (over: Partial<ProcessResult>): ProcessResult => ({
    exitCode: 1,
    signal: null,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    timedOut: false,
    canceled: false,
    spawnError: null,
    durationMs: 5,
    status: "",
    ...over,
  });

  it("is bwrap's own message when bwrap ended before the program ran", () => {
    expect(sandboxFailure(proc({ stderr: "bwrap: Can't find source path /x: No such file or directory\n", status: '{ "child-pid": 12 }\n' }))).toBe(
      "bwrap: Can't find source path /x: No such file or directory",
    );
    expect(sandboxFailure(proc({ exitCode: 1, stderr: "" }))).toBe("bwrap exited with code 1 before the program started");
    expect(sandboxFailure(proc({ exitCode: null, spawnError: 'program "/x/bwrap" was not found (ENOENT)' }))).toMatch(/^bwrap could not be started: /);
  });

  it("is null when the program ran (whatever it printed), or the run was stopped", () => {
    expect(sandboxFailure(proc({ stderr: "bwrap: I am the program\n", status: '{ "child-pid": 12 }\n{ "exit-code": 1 }\n' }))).toBeNull();
    expect(sandboxFailure(proc({ exitCode: 0, status: '{ "exit-code": 0 }' }))).toBeNull();
    expect(sandboxFailure(proc({ exitCode: null, signal: "SIGKILL", timedOut: true }))).toBeNull();
    expect(sandboxFailure(proc({ exitCode: null, signal: "SIGKILL", canceled: true }))).toBeNull();
  });
});

describe("parseBind", () => {
  it("reads the :rw and :ro suffixes", () => {
    expect(parseBind("/srv/data")).toEqual({ path: "/srv/data", rw: false });
    expect(parseBind("/srv/data:rw")).toEqual({ path: "/srv/data", rw: true });
    expect(parseBind("/srv/data:ro")).toEqual({ path: "/srv/data", rw: false });
    expect(parseBind("/srv/./data/")).toEqual({ path: "/srv/data", rw: false });
  });
});

describe("sandbox config", () => {
  const bad = (executor: Record<string, unknown>) => {
    try {
      parseConfig({ executors: { x: executor }, default_executor: "x" });
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error("config was accepted");
  };

  it("accepts sandbox, binds and network on program executors, and defaults to the sandbox where it works (auto)", () => {
    const cfg = parseConfig({
      executors: {
        claude: { type: "claude-code", sandbox: "bwrap", binds: ["/srv/data", "/var/cache/tool:rw"], network: false },
        codex: { type: "codex", sandbox: "bwrap" },
        script: { type: "command", command: ["node"], sandbox: "none" },
        plain: { type: "command", command: ["node"] },
      },
    });
    expect(sandboxMode(cfg.executors.claude)).toBe("bwrap");
    expect(sandboxMode(cfg.executors.script)).toBe("none");
    expect(sandboxMode(cfg.executors.plain)).toBe("auto");
    expect(sandboxSettings("claude", cfg.executors.claude, { hiddenPaths: ["/data"] })).toEqual({
      mode: "bwrap",
      executorName: "claude",
      binds: ["/srv/data", "/var/cache/tool:rw"],
      network: false,
      hiddenPaths: ["/data"],
      bwrap: "bwrap",
    });
    expect(sandboxSettings("codex", cfg.executors.codex, {})).toMatchObject({ network: true, binds: [], hiddenPaths: [] });
    expect(sandboxSettings("plain", cfg.executors.plain, {})).toMatchObject({ mode: "auto", network: true });
    expect(sandboxSettings("script", cfg.executors.script, {})).toBeNull();
  });

  it("refuses bad binds, naming the entry", () => {
    const cmd = { type: "command", command: ["node"], sandbox: "bwrap" };
    expect(bad({ ...cmd, binds: ["relative/path"] })).toContain('executors.x.binds.0 must be an absolute path, got "relative/path"');
    expect(bad({ ...cmd, binds: ["/ok", "/bad\nline"] })).toContain("executors.x.binds.1 must not contain control characters");
    expect(bad({ ...cmd, binds: ["/srv/data:rx"] })).toContain('executors.x.binds.0: ends in ":rx"');
    expect(bad({ ...cmd, binds: ["/:rw"] })).toContain('executors.x.binds.0 must not be "/"');
    expect(bad({ ...cmd, binds: [""] })).toContain("executors.x.binds.0");
    expect(bad({ ...cmd, binds: "/srv" })).toContain("executors.x.binds must be an array");
  });

  it("refuses sandbox settings on openai, and binds or network without the sandbox", () => {
    const openai = { type: "openai", base_url: "http://127.0.0.1:1/v1", model: "m" };
    expect(bad({ ...openai, sandbox: "bwrap" })).toContain("executors.x.sandbox: applies to executors that start a program");
    expect(bad({ ...openai, network: false })).toContain("executors.x.network: applies to executors that start a program");
    expect(bad({ ...openai, binds: ["/srv"] })).toContain("executors.x.binds: applies to executors that start a program");
    expect(bad({ type: "command", command: ["node"], sandbox: "none", network: false })).toContain("executors.x.network: takes effect only with the sandbox");
    expect(bad({ type: "claude-code", sandbox: "none", binds: ["/srv"] })).toContain("executors.x.binds: takes effect only with the sandbox");
    expect(bad({ type: "command", command: ["node"], sandbox: "docker" })).toContain('executors.x.sandbox must be one of "auto", "none", "bwrap"');
    expect(bad({ ...openai, max_memory_mb: 64 })).toContain("executors.x.max_memory_mb: applies to executors that start a program");
  });

  it("keeps codex's own sandbox modes under sandbox as before, and takes codex_sandbox", () => {
    const codex = (over: Record<string, unknown>) => executorConfigSchema().parse({ type: "codex", ...over }) as CodexExecutorConfig;
    expect(codexSandboxMode(codex({}))).toBe("workspace-write");
    expect(sandboxMode(codex({}))).toBe("auto");
    expect(codexSandboxMode(codex({ sandbox: "read-only" }))).toBe("read-only");
    expect(sandboxMode(codex({ sandbox: "read-only" }))).toBe("auto");
    const both = codex({ sandbox: "bwrap", codex_sandbox: "danger-full-access" });
    expect([sandboxMode(both), codexSandboxMode(both)]).toEqual(["bwrap", "danger-full-access"]);
    expect(bad({ type: "codex", sandbox: "read-only", codex_sandbox: "workspace-write" })).toContain(
      'executors.x.sandbox: names codex\'s own mode "read-only" while codex_sandbox is also set',
    );
    expect(bad({ type: "codex", sandbox: "none", network: false })).toContain("executors.x.network: takes effect only with the sandbox");
  });
});

describe("a sandbox that cannot start (no bubblewrap needed)", () => {
  it("fails the run for good, naming the key and the fix, when bwrap is missing", async () => {
    const cfg = executorConfigSchema().parse({ type: "command", command: [process.execPath, fixture("echo-agent.mjs")], sandbox: "bwrap" });
    const ex = createExecutor(
      "boxed",
      cfg,
      { env_allow: [] },
      { serverEnv: { PATH: process.env.PATH }, killGraceMs: 200, bwrapProgram: path.join(base, "no-bwrap") },
    );
    const r = await ex.execute(makeRequest(runDir));
    expect(r).toMatchObject({ status: "failed", permanent: true, exitCode: null });
    expect(r.error).toBe(
      `Executor "boxed" could not start: its sandbox (executors.boxed.sandbox is "bwrap") needs bubblewrap, and "${path.join(base, "no-bwrap")}" is not installed here. ` +
        'Install it (apt-get install bubblewrap) or set executors.boxed.sandbox to "none".',
    );
  });

  it("reports a missing program as such, before looking for bwrap", async () => {
    const cfg = executorConfigSchema().parse({ type: "command", command: ["agent-cron-no-such-program"], sandbox: "bwrap" });
    const ex = createExecutor(
      "boxed",
      cfg,
      { env_allow: [] },
      { serverEnv: { PATH: process.env.PATH }, killGraceMs: 200, bwrapProgram: path.join(base, "no-bwrap") },
    );
    const r = await ex.execute(makeRequest(runDir));
    expect(r).toMatchObject({ status: "failed", permanent: true });
    expect(r.error).toBe(
      'Executor "boxed" could not start: program "agent-cron-no-such-program" was not found (ENOENT). Install it or set executors.boxed.command in the config file.',
    );
  });

  it("doctor marks a sandboxed executor missing when bubblewrap is, and leaves the others alone", async () => {
    const config = parseConfig({
      executors: {
        boxed: { type: "command", command: [process.execPath], sandbox: "bwrap" },
        open: { type: "command", command: [process.execPath] },
      },
      default_executor: "boxed",
    });
    const rows = await doctor(config, { PATH: path.join(base, "empty-path") });
    expect(rows.map((r) => [r.executor, r.status])).toEqual([
      ["boxed", "missing"],
      ["open", "ok"],
    ]);
    expect(rows[0].detail).toContain("apt-get install bubblewrap");
    expect(rows[0].detail).toContain('set executors.boxed.sandbox to "none"');
    const withRow = await doctor(config, { PATH: path.join(base, "empty-path") }, { sandbox: true });
    expect(withRow.at(-1)).toMatchObject({ executor: "(sandbox)", type: "sandbox", status: "missing", version: null });
  });
});
