/**
 * Tools inside a run (SPEC §21) under `"sandbox": "bwrap"` (SPEC §16, §20), with the real
 * bubblewrap: a claude-code and a codex run (the fake CLIs, which start the MCP server they are
 * configured with and call its tools over the SDK's stdio client) reach their own run-tools
 * server from inside the sandbox, and report_nothing and remember work; a run cannot reach
 * another run's socket, nor the owner's. agent-cron runs from a copy installed under its
 * user's HOME (as a user-prefix `npm install -g` puts it), which the sandbox hides: the run
 * tools' program must be bound in like the agent's own. Needs bubblewrap
 * (scripts/install-bubblewrap.sh, run by npm run test:all); without it every test fails.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { bwrapAvailable } from "../../src/executors/sandbox.js";
import { sandboxTestDir } from "../executors/helpers.js";
import { ROOT, TestServer, baseConfig, fixture, waitFor, type Structured } from "../helpers/server.js";

// Outside /tmp and the real HOME, both hidden anyway: what is hidden is hidden because the server named it.
const base = sandboxTestDir("agent-cron-rt-sandbox-");
const serverHome = path.join(base, "home");
const install = path.join(serverHome, ".local", "lib", "node_modules", "agent-cron");
const records = path.join(base, "records");

let bwrap: Awaited<ReturnType<typeof bwrapAvailable>> | undefined;
beforeEach(() => {
  if (!bwrap?.ok) throw new Error(`bubblewrap does not work here (${bwrap?.detail ?? "not checked"}); run bash scripts/install-bubblewrap.sh`);
});
beforeAll(async () => {
  bwrap = await bwrapAvailable();
  mkdirSync(records, { recursive: true });
  cpSync(path.join(ROOT, "dist"), path.join(install, "dist"), { recursive: true });
  cpSync(path.join(ROOT, "package.json"), path.join(install, "package.json"));
});
const caches: string[] = [];
afterAll(() => {
  for (const d of [base, ...caches]) rmSync(d, { recursive: true, force: true });
});

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close().catch(() => {});
});

/**
 * A server started from the copy under its HOME, its claude and codex the fake CLIs under
 * bubblewrap. Default work dirs under `cache`: a long path puts each run's socket in the OS
 * temp dir (Unix socket paths are short), a short one in the run's work dir.
 */
async function start(cache: "long" | "short"): Promise<{ s: TestServer; record: string }> {
  const dataDir = path.join(base, `data-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dataDir);
  const record = path.join(records, `${path.basename(dataDir)}.jsonl`);
  // The repository read-only (the fake CLIs load the MCP SDK from its node_modules); the record file's folder writable.
  const sandboxed = { sandbox: "bwrap", binds: [ROOT, `${records}:rw`] };
  writeFileSync(
    path.join(dataDir, "config.json"),
    JSON.stringify(
      baseConfig({
        env_allow: ["FAKE_AGENT_RECORD"],
        executors: {
          claude: { type: "claude-code", bin: fixture("fake-claude.mjs"), ...sandboxed },
          codex: { type: "codex", bin: fixture("fake-codex.mjs"), ...sandboxed },
        },
      }),
    ),
  );
  const env: Record<string, string> = { HOME: serverHome, FAKE_AGENT_RECORD: record };
  if (cache === "short") caches.push((env.XDG_CACHE_HOME = mkdtempSync("/var/tmp/acrt-")));
  const s = await TestServer.start({ dataDir, cli: path.join(install, "dist", "cli.js"), env });
  servers.push(s);
  return { s, record };
}

function invocations(record: string): Structured[] {
  if (!existsSync(record)) return [];
  return readFileSync(record, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

const tool = (name: string, args: Record<string, unknown>) => `TOOL ${name} ${JSON.stringify(args)}`;

describe("run tools inside a bubblewrap sandbox", () => {
  it("a claude-code and a codex run reach their own run-tools server: report_nothing makes the run quiet, remember keeps the note", {
    timeout: 60_000,
  }, async () => {
    const { s, record } = await start("long");
    for (const executor of ["claude", "codex"]) {
      const prompt = [
        `Look at the feed.`,
        tool("remember", { note: `${executor} saw item #17` }),
        tool("report_nothing", { reason: `${executor}: nothing new` }),
      ].join("\n");
      await s.addJob({ name: `watch-${executor}`, schedule: "@yearly", executor, prompt, retries: 0 });
      const { run } = await s.tool("run_now", { job: `watch-${executor}`, wait: true });
      expect(run.status, run.error).toBe("completed");
      expect(run).toMatchObject({ outcome: "quiet", outcome_note: `${executor}: nothing new` });
      expect((await s.job(`watch-${executor}`)).notes.map((n: Structured) => n.text)).toEqual([`${executor} saw item #17`]);
      const call = invocations(record).at(-1)!;
      // It ran in the sandbox (its own pid namespace) and the server it started is agent-cron's copy under the hidden HOME.
      expect(call.pid).toBeLessThan(10);
      expect(call.run_tools.server.args[0]).toBe(path.join(install, "dist", "cli.js"));
      // Its socket is in the temp dir, which the sandbox hides but for that one socket.
      expect(path.dirname(call.run_tools.server.env.AGENT_CRON_RUN_TOOLS_SOCKET)).toBe(os.tmpdir());
      expect(call.run_tools.listed.sort()).toEqual(["ask_person", "remember", "report_nothing"]);
      expect(call.run_tools.results.map((r: Structured) => [r.name, r.isError])).toEqual([
        ["remember", false],
        ["report_nothing", false],
      ]);
    }
  });

  it("a run cannot reach another run's socket nor the owner's, and its own tools still work", { timeout: 90_000 }, async () => {
    const { s, record } = await start("short");
    // A run that holds its tools open while the other one looks for them.
    await s.addJob({ name: "holder", schedule: "@yearly", executor: "claude", prompt: `${tool("remember", { note: "held" })}\nHOLD 60000`, retries: 0 });
    const { run: held } = await s.tool("run_now", { job: "holder" });
    const holding = await waitFor(() => invocations(record).find((c) => c.holding), { timeout: 30_000, what: "the holder run to have its tools open" });
    const otherSocket = holding.run_tools.server.env.AGENT_CRON_RUN_TOOLS_SOCKET as string;
    const ownerSocket = path.join(s.dataDir, "agent-cron.sock");
    // Both are there outside the sandbox (so the check below can fail).
    expect(existsSync(otherSocket)).toBe(true);
    expect(path.dirname(otherSocket)).toBe(held.work_dir);
    expect(existsSync(ownerSocket)).toBe(true);

    for (const executor of ["codex", "claude"]) {
      const prompt = [tool("remember", { note: `${executor} looked around` }), `CONNECT ${otherSocket}`, `CONNECT ${ownerSocket}`].join("\n");
      await s.addJob({ name: `prober-${executor}`, schedule: "@yearly", executor, prompt, retries: 0 });
      const { run } = await s.tool("run_now", { job: `prober-${executor}`, wait: true });
      expect(run.status, run.error).toBe("completed");
      const call = invocations(record).find((c) => c.stdin.includes(`${executor} looked around`))!;
      expect(call.run_tools.results).toMatchObject([{ name: "remember", isError: false }]);
      expect(call.run_tools.connects).toEqual([
        { path: otherSocket, result: "ENOENT" },
        { path: ownerSocket, result: "ENOENT" },
      ]);
      expect(path.dirname(call.run_tools.server.env.AGENT_CRON_RUN_TOOLS_SOCKET)).toBe(run.work_dir);
    }
    await s.tool("cancel_run", { run: held.id });
  });
});
