/**
 * `"sandbox": "bwrap"` (SPEC §16) with the real bubblewrap and real processes: what a
 * sandboxed run can see and do, that timeouts and cancels still kill everything, that a
 * sandbox that cannot start fails the run for good, and what doctor says. Needs bubblewrap,
 * which scripts/install-bubblewrap.sh installs (npm run test:all runs it first); without it
 * every test here fails.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { executorConfigSchema, parseConfig } from "../../src/config.js";
import { doctor, sandboxDoctorRow } from "../../src/doctor.js";
import { createExecutor, type ExecutorContext } from "../../src/executors/index.js";
import { bwrapAvailable, sandboxStartupNote } from "../../src/executors/sandbox.js";
import type { ExecutionRequest, ExecutionResult } from "../../src/core/ports.js";
import { fixture, makeRequest, processesWithEnv, sandboxTestDir, waitFor } from "../executors/helpers.js";

const FIXTURES = path.dirname(fixture("sandbox-probe.mjs"));

// Outside /tmp and outside the real HOME, both of which the sandbox hides anyway: what is
// hidden here is hidden because it is in hiddenPaths (or the fake HOME).
const base = sandboxTestDir("agent-cron-sandbox-test-");
const home = path.join(base, "home");
const dataDir = path.join(base, "data");
const configFile = path.join(base, "agent-cron.json");
const workRoot = path.join(base, "work");
const runDir = path.join(workRoot, "run-a");
const siblingDir = path.join(workRoot, "run-b");
const hostTmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-sandbox-host-"));
const hiddenPaths = [dataDir, configFile, workRoot];

const serverEnv = { PATH: process.env.PATH, HOME: home, LANG: "C.UTF-8", SECRET_TOKEN: "server-secret" };

let bwrap: Awaited<ReturnType<typeof bwrapAvailable>> | undefined;
// Every test fails, none is skipped, when bubblewrap does not work here.
beforeEach(() => {
  if (!bwrap?.ok) throw new Error(`bubblewrap does not work here (${bwrap?.detail ?? "not checked"}); run bash scripts/install-bubblewrap.sh`);
});
beforeAll(async () => {
  bwrap = await bwrapAvailable();
  for (const d of [home, path.join(home, ".ssh"), path.join(home, ".claude"), dataDir, runDir, siblingDir]) mkdirSync(d, { recursive: true });
  writeFileSync(path.join(home, ".ssh", "id_ed25519"), "home secret");
  writeFileSync(path.join(home, ".claude.json"), '{"claude":"settings"}');
  writeFileSync(path.join(dataDir, "jobs.json"), "data secret");
  writeFileSync(configFile, '{"config":"secret"}');
  writeFileSync(path.join(siblingDir, "notes.txt"), "other run");
  writeFileSync(path.join(hostTmp, "marker"), "host tmp");
});
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
  rmSync(hostTmp, { recursive: true, force: true });
});

const probe = fixture("sandbox-probe.mjs");

function executor(over: Record<string, unknown> = {}, ctx: Partial<ExecutorContext> = {}) {
  const cfg = executorConfigSchema().parse({ type: "command", command: ["node", probe], output: "json", sandbox: "bwrap", binds: [FIXTURES], ...over });
  return createExecutor("probe", cfg, { env_allow: [] }, { serverEnv, killGraceMs: 300, hiddenPaths, ...ctx });
}

function request(ask: Record<string, unknown> = {}, over: Partial<ExecutionRequest> = {}): ExecutionRequest {
  return makeRequest(runDir, { prompt: JSON.stringify({ serverPid: process.pid, ...ask }), ...over });
}

interface Report {
  pid: number;
  ppid: number;
  cwd: string;
  procPids: number[];
  serverPidVisible: unknown;
  interfaces: string[];
  netDev: string[];
  env: Record<string, string>;
  capEff: string | null;
  uid: number;
  run: { cmd: string; status: number | null; error: string | null; output: string }[];
  read: Record<string, { text?: string; entries?: string[]; error?: string }>;
  write: Record<string, string | { error: string }>;
}

function report(r: ExecutionResult): Report {
  const line = (r.output || r.raw || "").split("\n").find((l) => l.startsWith("{"));
  if (!line) throw new Error(`no probe report: ${r.status} ${r.error} ${r.raw}`);
  return JSON.parse(line) as Report;
}

const hostInterfaces = readFileSync("/proc/net/dev", "utf8")
  .split("\n")
  .slice(2)
  .map((l) => l.split(":")[0].trim())
  .filter(Boolean)
  .sort();

describe('"sandbox": "bwrap"', () => {
  const secrets = {
    data: path.join(dataDir, "jobs.json"),
    config: configFile,
    sibling: path.join(siblingDir, "notes.txt"),
    home: path.join(home, ".ssh", "id_ed25519"),
    tmp: path.join(hostTmp, "marker"),
  };

  it("the probe sees every secret without the sandbox (so the checks below can fail)", async () => {
    const r = await executor({ sandbox: "none", binds: undefined }).execute(request({ read: Object.values(secrets) }));
    expect(r.status).toBe("completed");
    const seen = report(r).read;
    expect(seen[secrets.data].text).toBe("data secret");
    expect(seen[secrets.config].text).toBe('{"config":"secret"}');
    expect(seen[secrets.sibling].text).toBe("other run");
    expect(seen[secrets.home].text).toBe("home secret");
    expect(seen[secrets.tmp].text).toBe("host tmp");
  });

  it("hides the data dir, the config file, other runs' dirs, HOME and /tmp, and keeps the work dir writable", async () => {
    const out = path.join(runDir, "out.txt");
    const intoHidden = path.join(siblingDir, "planted.txt");
    const r = await executor().execute(request({ read: [...Object.values(secrets), dataDir, workRoot, home], write: [out, intoHidden] }));
    expect(r).toMatchObject({ status: "completed", error: null });
    const seen = report(r);
    // (1) nothing of the hidden paths is readable
    expect(seen.read[secrets.data]).toEqual({ error: "ENOENT" });
    expect(seen.read[dataDir]).toEqual({ entries: [] });
    // a hidden file is /dev/null, bound without device access: it cannot even be opened
    expect(seen.read[secrets.config]).toEqual({ error: "EACCES" });
    expect(seen.read[secrets.sibling]).toEqual({ error: "ENOENT" });
    expect(seen.read[workRoot]).toEqual({ entries: ["run-a"] });
    expect(seen.read[secrets.home]).toEqual({ error: "ENOENT" });
    expect(seen.read[secrets.tmp]).toEqual({ error: "ENOENT" });
    // the executor's own needs are bound back into the empty HOME (claude-code only: none here)
    expect(seen.read[home]).toEqual({ entries: [] });
    // (2) the work dir is writable and the write reaches the host; a hidden dir's is thrown away
    expect(seen.write[out]).toBe("ok");
    expect(readFileSync(out, "utf8")).toBe("probe");
    expect(existsSync(intoHidden)).toBe(false);
    expect(seen.cwd).toBe(runDir);
    // the environment is the executor's child env, nothing of the server's beyond it
    expect(seen.env.AGENT_CRON_RUN_ID).toMatch(/^run-/);
    expect(seen.env.SECRET_TOKEN).toBeUndefined();
    expect(seen.env.HOME).toBe(home);
  });

  it("runs in its own pid namespace: the server's process is not there", async () => {
    const seen = report(await executor().execute(request()));
    // (3) bwrap's init is pid 1 and the program's parent; the server's pid does not exist
    expect(seen.ppid).toBe(1);
    expect(seen.serverPidVisible).toEqual({ error: "ENOENT" });
    expect(seen.procPids).not.toContain(process.pid);
    expect(seen.procPids.length).toBeLessThan(10);
  });

  it("sees the system read-only", async () => {
    const seen = report(await executor().execute(request({ write: ["/usr/agent-cron-probe", "/etc/agent-cron-probe"] })));
    // (4)
    expect(seen.write["/usr/agent-cron-probe"]).toEqual({ error: expect.stringMatching(/^(EROFS|EACCES|EPERM)$/) });
    expect(seen.write["/etc/agent-cron-probe"]).toEqual({ error: expect.stringMatching(/^(EROFS|EACCES|EPERM)$/) });
    expect(existsSync("/usr/agent-cron-probe")).toBe(false);
  });

  it("cannot undo its sandbox: no capabilities, so no unmounting what hides a path, no remounting the system writable", async () => {
    const r = await executor().execute(
      request({
        run: [
          ["umount", dataDir],
          ["umount", "-l", home],
          ["mount", "-o", "remount,bind,rw", "/"],
          ["mount", "-o", "remount,rw", "/usr"],
        ],
        read: [secrets.data, secrets.home],
        write: ["/usr/agent-cron-probe-2"],
      }),
    );
    const seen = report(r);
    // Even when the server runs as root (as CI does): bwrap would keep root's capabilities.
    expect(seen.capEff).toBe("0000000000000000");
    for (const step of seen.run) expect(step.status, `${step.cmd}: ${step.output}`).not.toBe(0);
    expect(seen.read[secrets.data]).toEqual({ error: "ENOENT" });
    expect(seen.read[secrets.home]).toEqual({ error: "ENOENT" });
    expect(seen.write["/usr/agent-cron-probe-2"]).toEqual({ error: expect.stringMatching(/^(EROFS|EACCES|EPERM)$/) });
    expect(existsSync("/usr/agent-cron-probe-2")).toBe(false);
  });

  it('"network": false leaves only loopback; the default keeps the host\'s interfaces', async () => {
    // (5)
    const offline = report(await executor({ network: false }).execute(request()));
    expect(offline.netDev).toEqual(["lo"]);
    expect(offline.interfaces.every((i) => i === "lo")).toBe(true);
    const online = report(await executor().execute(request()));
    expect(online.netDev).toEqual(hostInterfaces);
  });

  it.each([
    ["in the process group", false],
    ["that left the process group (setsid)", true],
  ])("kills the whole sandboxed tree on timeout, however it ignores SIGTERM: a grandchild %s", async (_, escape) => {
    // (6)
    const marker = `agent-cron-sandbox-hang-${process.pid}-${Date.now()}`;
    const req = request({ hang: marker, escape }, { timeoutMs: 1500 });
    const started = Date.now();
    const pending = executor().execute(req);
    expect(await waitFor(() => withMarker(marker).length > 0, 5000)).toBe(true);
    const r = await pending;
    expect(r.status).toBe("timed_out");
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await waitFor(() => withMarker(marker).length === 0 && processesWithEnv("AGENT_CRON_RUN_ID", req.runId).length === 0, 3000)).toBe(true);
  });

  it("gives the program its grace period: SIGTERM reaches it, not only bwrap", async () => {
    const file = path.join(runDir, `ended-${Date.now()}`);
    const controller = new AbortController();
    const req = request({ onTerm: file }, { timeoutMs: 60_000, signal: controller.signal });
    const pending = executor().execute(req);
    await new Promise((r) => setTimeout(r, 500));
    controller.abort();
    expect((await pending).status).toBe("canceled");
    expect(readFileSync(file, "utf8")).toBe("ended cleanly");
  });

  it("kills the whole sandboxed tree on cancel", async () => {
    const marker = `agent-cron-sandbox-cancel-${process.pid}-${Date.now()}`;
    const controller = new AbortController();
    const req = request({ hang: marker }, { timeoutMs: 60_000, signal: controller.signal });
    const pending = executor().execute(req);
    expect(await waitFor(() => withMarker(marker).length > 0, 5000)).toBe(true);
    controller.abort();
    expect((await pending).status).toBe("canceled");
    expect(await waitFor(() => withMarker(marker).length === 0 && processesWithEnv("AGENT_CRON_RUN_ID", req.runId).length === 0, 3000)).toBe(true);
  });

  it("fails the run for good, with the reason and the fix, when the sandbox cannot start", async () => {
    // (7) no bubblewrap
    const missing = await executor({}, { bwrapProgram: path.join(base, "no-such-bwrap") }).execute(request());
    expect(missing).toMatchObject({ status: "failed", permanent: true });
    expect(missing.error).toContain("executors.probe.sandbox");
    expect(missing.error).toContain("apt-get install bubblewrap");
    expect(missing.error).toContain('"none"');
    // bwrap's own refusal: a bind that does not exist
    const badBind = path.join(base, "no-such-dir");
    const refused = await executor({ binds: [FIXTURES, badBind] }).execute(request());
    expect(refused).toMatchObject({ status: "failed", permanent: true });
    expect(refused.error).toContain(`bwrap: Can't find source path ${badBind}`);
    expect(refused.error).toContain("executors.probe.sandbox");
    // a program that fails and happens to say "bwrap:" is the program's failure, retried as usual
    const own = await executor({ output: "text" }).execute(request({ stderr: "bwrap: not really\n", exit: 1 }));
    expect(own.status).toBe("failed");
    expect(own.permanent).toBeFalsy();
    expect(own.error).toMatch(/^"node" exited with code 1: bwrap: not really/);
  });

  it("keeps a program installed under HOME reachable, and binds claude-code's config dir writable", async () => {
    // A script under the (hidden) HOME, as an npm or nvm install there would be.
    const bin = path.join(home, ".local", "lib", "probe-pkg", "bin");
    mkdirSync(bin, { recursive: true });
    const installed = path.join(bin, "probe.mjs");
    copyFileSync(probe, installed);
    chmodSync(installed, 0o755);
    const r = await executor({ command: [installed], binds: undefined }).execute(request({ read: [secrets.home] }));
    expect(r.status).toBe("completed");
    expect(report(r).read[secrets.home]).toEqual({ error: "ENOENT" });

    // claude-code, with the probe as its program: the answer is no result JSON, but the report is in raw.
    const cfg = executorConfigSchema().parse({ type: "claude-code", bin: probe, sandbox: "bwrap", binds: [FIXTURES] });
    const claude = createExecutor("claude", cfg, { env_allow: [] }, { serverEnv, killGraceMs: 300, hiddenPaths });
    const note = path.join(home, ".claude", "probe-note");
    const seen = report(await claude.execute(request({ read: [path.join(home, ".claude.json"), secrets.home], write: [note] })));
    expect(seen.read[path.join(home, ".claude.json")]).toEqual({ text: '{"claude":"settings"}' });
    expect(seen.read[secrets.home]).toEqual({ error: "ENOENT" });
    expect(seen.write[note]).toBe("ok");
    expect(readFileSync(note, "utf8")).toBe("probe");
  });

  it("binds the operator's paths read-only, or writable with :rw", async () => {
    const shared = path.join(base, "shared");
    const cache = path.join(base, "cache");
    mkdirSync(shared, { recursive: true });
    mkdirSync(cache, { recursive: true });
    writeFileSync(path.join(shared, "in.txt"), "shared input");
    // Both live under a hidden path: only the binds bring them back.
    const r = await executor({ binds: [FIXTURES, shared, `${cache}:rw`] }, { hiddenPaths: [...hiddenPaths, base] }).execute(
      request({ read: [path.join(shared, "in.txt")], write: [path.join(shared, "x"), path.join(cache, "y")] }),
    );
    const seen = report(r);
    expect(seen.read[path.join(shared, "in.txt")]).toEqual({ text: "shared input" });
    expect(seen.write[path.join(shared, "x")]).toEqual({ error: expect.stringMatching(/^(EROFS|EACCES|EPERM)$/) });
    expect(seen.write[path.join(cache, "y")]).toBe("ok");
    expect(readFileSync(path.join(cache, "y"), "utf8")).toBe("probe");
  });
});

describe("doctor and the start-up note", () => {
  it("reports that bubblewrap works here, and a sandboxed executor as ok", async () => {
    // (8)
    const row = await sandboxDoctorRow(process.env);
    expect(row).toMatchObject({ executor: "(sandbox)", type: "sandbox", status: "ok", version: expect.stringMatching(/^bubblewrap \d/) });
    expect(row.program).toMatch(/bwrap$/);

    const config = parseConfig({
      executors: {
        boxed: { type: "command", command: ["node", probe], sandbox: "bwrap" },
        auto: { type: "command", command: ["node", probe] },
        open: { type: "command", command: ["node", probe], sandbox: "none" },
      },
      default_executor: "boxed",
    });
    const rows = await doctor(config, process.env, { sandbox: true });
    expect(rows.map((r) => [r.executor, r.status])).toEqual([
      ["boxed", "ok"],
      ["auto", "ok"],
      ["open", "ok"],
      ["(sandbox)", "ok"],
    ]);
    expect(rows[0].detail).toContain("sandbox bwrap ok");
    expect(rows[1].detail).toContain("sandbox auto: bwrap ok");
    expect(rows[2].detail).not.toContain("sandbox");

    expect(await sandboxStartupNote(config, process.env)).toBe(
      'bubblewrap is available: remove "sandbox": "none" from an executor (or set "auto") to isolate its runs (not sandboxed now: open).',
    );
  });

  it("says so when bubblewrap is missing", async () => {
    const check = await bwrapAvailable({ program: "agent-cron-no-such-bwrap" });
    expect(check).toMatchObject({ ok: false, status: "missing" });
    expect(check.detail).toContain("apt-get install bubblewrap");
  });
});

/** Live processes whose command line carries the marker. */
function withMarker(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "latin1");
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (cmdline.includes(marker) && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z") found.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}
