// Codex CLI 0.169.0, the real CLI, as an MCP client of agent-cron over stdio: `codex exec`
// starts the built server from config.toml (as the README shows), and a scripted model on
// loopback (fake-model-api.ts, mode mcp-client) has it call add_cron and then list_crons.
// Without the tool-approval setting Codex refuses add_cron itself; with it, as config.toml
// says or as the README's one-run `-c`, the job is made and listed.
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, removeDir } from "../helpers/server.js";
import { CODEX_CLIENT_JOB, startFakeModelApi, type FakeModelApi, type SeenRequest } from "../fixtures/fake-model-api.js";
import { pinnedCli } from "./helpers.js";

const run = promisify(execFile);
const APPROVE = 'mcp_servers.agent-cron.default_tools_approval_mode="approve"';

let api: FakeModelApi;
let tmp: string;
beforeAll(async () => {
  api = await startFakeModelApi();
  tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-codex-client-"));
});
afterAll(async () => {
  await api?.close();
  await removeDir(tmp);
});

interface Session {
  dataDir: string;
  /** The requests of this session, in order. */
  requests: SeenRequest[];
  /** What Codex printed (stdout and stderr). */
  printed: string;
}

/** One `codex exec` in a fresh CODEX_HOME whose config.toml names agent-cron, as the README does. */
async function codexExec(opts: { approveInConfig: boolean; extraArgs?: string[] }): Promise<Session> {
  const home = mkdtempSync(path.join(tmp, "home-"));
  const codexHome = path.join(home, ".codex");
  const dataDir = path.join(home, "agent-cron-data");
  const work = path.join(home, "work");
  for (const dir of [codexHome, dataDir, work]) mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(codexHome, "config.toml"),
    [
      "[mcp_servers.agent-cron]",
      `command = ${JSON.stringify(process.execPath)}`,
      `args = ${JSON.stringify([CLI, "serve", "--data-dir", dataDir])}`,
      ...(opts.approveInConfig ? ['default_tools_approval_mode = "approve"'] : []),
      "",
      // The server ends with its client: no background owner outlives the test.
      "[mcp_servers.agent-cron.env]",
      'AGENT_CRON_ALWAYS_ON = "client"',
      "",
    ].join("\n"),
  );
  const first = api.requests.length;
  const args = [
    "exec",
    "--skip-git-repo-check",
    "-m",
    "fake-model",
    "-c",
    "model_provider=fake",
    "-c",
    `model_providers.fake={ name = "fake", base_url = "${api.origin}/v1", wire_api = "responses", env_key = "FAKE_MODEL_KEY", request_max_retries = 0, stream_max_retries = 0 }`,
    // Without these two it calls hosts outside the loopback.
    "-c",
    "analytics.enabled=false",
    "-c",
    "features.plugins=false",
    ...(opts.extraArgs ?? []),
    "MODEL=mcp-client Every weekday at 9 UTC, summarise yesterday's errors.",
  ];
  const child = spawn(pinnedCli("codex"), args, {
    cwd: work,
    env: { PATH: process.env.PATH ?? "", HOME: home, CODEX_HOME: codexHome, FAKE_MODEL_KEY: "sk-fake", LANG: "C.UTF-8" },
    // codex exec reads more of the prompt from a stdin that is not a terminal.
    stdio: ["ignore", "pipe", "pipe"],
  });
  let printed = "";
  child.stdout.on("data", (c: Buffer) => (printed += c));
  child.stderr.on("data", (c: Buffer) => (printed += c));
  const timer = setTimeout(() => child.kill("SIGKILL"), 100_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  clearTimeout(timer);
  expect(code, printed).toBe(0);
  return { dataDir, requests: api.requests.slice(first).filter((r) => r.path === "/v1/responses"), printed };
}

/** What each agent-cron tool call returned to the model, by tool name, from the last request's input. */
function toolOutputs(s: Session): Record<string, string> {
  const input: any[] = s.requests.at(-1)!.body.input;
  const names = new Map(input.filter((i) => i.type === "function_call").map((i) => [i.call_id, `${i.namespace ?? ""}${i.namespace ? "." : ""}${i.name}`]));
  const out: Record<string, string> = {};
  for (const i of input.filter((x) => x.type === "function_call_output")) {
    const text = typeof i.output === "string" ? i.output : (i.output as { text?: string }[]).map((p) => p.text ?? "").join("\n");
    out[names.get(i.call_id)!] = text;
  }
  return out;
}

async function jobsInDataDir(dataDir: string): Promise<{ name: string; schedule: string; created_by?: string }[]> {
  const { stdout } = await run(process.execPath, [CLI, "list", "--json", "--data-dir", dataDir], { env: { ...process.env, AGENT_CRON_ALWAYS_ON: "client" } });
  return JSON.parse(stdout).jobs;
}

describe("Codex CLI as an MCP client of agent-cron over stdio", () => {
  it("offers agent-cron's tools to the model as the mcp__agent_cron namespace, each with its description", async () => {
    const s = await codexExec({ approveInConfig: true });
    const offered = s.requests
      .map((r) => (r.body.tools as { type: string; name: string; tools?: { name: string }[] }[]).find((t) => t.name === "mcp__agent_cron"))
      .find(Boolean);
    expect(offered?.type).toBe("namespace");
    expect(offered!.tools!.map((t) => t.name)).toEqual(
      expect.arrayContaining(["add_cron", "list_crons", "get_cron", "pause", "resume", "run_now", "remove", "audit"]),
    );
  });

  it("without the tool-approval setting, codex exec refuses add_cron itself (it has no one to ask); the read-only list_crons runs", async () => {
    const s = await codexExec({ approveInConfig: false });
    const outputs = toolOutputs(s);
    expect(outputs["mcp__agent_cron.add_cron"]).toContain("MCP tool call requires approval, but approval policy is never");
    expect(outputs["mcp__agent_cron.list_crons"]).toContain('"summary":"No jobs match.');
    expect(await jobsInDataDir(s.dataDir)).toEqual([]);
  });

  it('with default_tools_approval_mode = "approve" in config.toml, add_cron makes the job and list_crons shows it', async () => {
    const s = await codexExec({ approveInConfig: true });
    const outputs = toolOutputs(s);
    // Codex hands the model the structured JSON, summary first (DESIGN.md, What real clients show the model).
    expect(outputs["mcp__agent_cron.add_cron"]).toMatch(/\{"summary":"Scheduled \\"codex-tried\\": At 09:00 AM, Monday through Friday \(UTC\); next run /);
    expect(outputs["mcp__agent_cron.list_crons"]).toContain('"summary":"1 job: \\"codex-tried\\" (active).');
    const jobs = await jobsInDataDir(s.dataDir);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ name: CODEX_CLIENT_JOB.name, schedule: CODEX_CLIENT_JOB.schedule });
  });

  it("with the README's one-run form, codex exec -c '" + APPROVE + "', add_cron makes the job", async () => {
    const s = await codexExec({ approveInConfig: false, extraArgs: ["-c", APPROVE] });
    expect(toolOutputs(s)["mcp__agent_cron.add_cron"]).toContain('"summary":"Scheduled \\"codex-tried\\"');
    expect((await jobsInDataDir(s.dataDir)).map((j) => j.name)).toEqual(["codex-tried"]);
  });
});
