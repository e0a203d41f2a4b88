/**
 * Nothing a run or a client does widens its rights (SPEC §20), through the built server and
 * CLI: approval is a person's act (a run that calls `agent-cron approve` is refused), a
 * change of what a job does sends it back, a client that cancels an elicitation leaves the
 * job waiting, names cannot pass for ids, and a config that goes away keeps the running one.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, makeDataDir, runCli, serversPerTest, waitFor } from "../helpers/server.js";

const start = serversPerTest();

const cli = async (args: string[], dataDir: string) => runCli([...args, "--data-dir", dataDir]);

describe("approval is a person's act", () => {
  it("a run (no sandbox) that calls agent-cron approve is refused, and a job it adds through the CLI waits for a person", async () => {
    const dataDir = makeDataDir();
    const config = JSON.parse(readFileSync(path.join(dataDir, "config.json"), "utf8"));
    // What an agent with a shell would run, inside its run: the CLI, on the same data dir.
    const inRun = (...args: string[]) => ({ type: "command", sandbox: "none", command: [process.execPath, CLI, ...args, "--data-dir", dataDir] });
    config.approval = "required";
    config.executors = {
      ...config.executors,
      approver: inRun("approve", "{prompt}"),
      planter: inRun("add", "--name", "planted", "--schedule", "@every 1s", "--prompt", "{prompt}"),
    };
    writeFileSync(path.join(dataDir, "config.json"), JSON.stringify(config));
    const s = await start({ dataDir });

    const waiting = await s.tool("add_cron", { name: "waiting", schedule: "@every 1s", prompt: "tick" });
    expect(waiting.job.state).toBe("pending_approval");
    // The person's own jobs, made at a terminal, need no approval.
    for (const [name, executor, prompt] of [
      ["self-approver", "approver", "waiting"],
      ["planter", "planter", "evil"],
    ]) {
      const added = await cli(["add", "--name", name, "--schedule", "@yearly", "--executor", executor, "--prompt", prompt], dataDir);
      expect(added.code, added.stderr).toBe(0);
    }

    const approving = await s.tool("run_now", { job: "self-approver" });
    const approveRun = await s.waitForRunEnd("self-approver", approving.run.id);
    expect(approveRun.status).toBe("failed");
    expect(approveRun.error).toMatch(
      /Approving a job is a person's act, and this caller is not one: process \d+ (?:belongs to a run|has a run's AGENT_CRON_RUN_ID)/,
    );
    expect((await s.job("waiting")).state).toBe("pending_approval");

    const planting = await s.tool("run_now", { job: "planter" });
    expect((await s.waitForRunEnd("planter", planting.run.id)).status).toBe("completed");
    const planted = await s.job("planted");
    expect(planted.state).toBe("pending_approval");
    expect(planted.created_by).toBe("a run (through the CLI)");

    // A person at a terminal approves, and the record says who, when and through what.
    const approved = await cli(["approve", "waiting", "--json"], dataDir);
    expect(approved.code, approved.stderr).toBe(0);
    const job = (await s.tool("get_cron", { job: "waiting" })).job;
    expect(job.state).toBe("active");
    expect(job.approvals).toEqual([
      { event: "approved", via: "cli", at: expect.stringMatching(/^\d{4}-/), by: expect.stringMatching(/\(uid \d+\), pid \d+ \(/) },
    ]);
    // A person rejects: the job goes, and the notice says who.
    const rejected = await cli(["reject", "planted"], dataDir);
    expect(rejected.code, rejected.stderr).toBe(0);
    await waitFor(() => /Job "planted" \([0-9a-f-]{36}\) was rejected by .*\(uid \d+\), pid \d+ .* through cli/.test(s.stderr()), {
      what: "the rejection notice",
    });
  }, 120_000);
});

describe("a change of what a job does needs a person again", () => {
  it("ask: an agent's change of on_complete, output_schema, requires_mcp or timezone sends an approved job back, and the answer says so", async () => {
    const s = await start({ config: { approval: "ask" }, onElicit: () => ({ action: "accept", content: { approve: true } }) });
    const made = await s.tool("add_cron", { name: "report", schedule: "@daily", prompt: "p" });
    expect(made.job.state).toBe("active");
    // Changes of nothing that matters keep it active.
    expect((await s.tool("update_cron", { job: "report", timeout_seconds: 60, prompt: "p" })).job.state).toBe("active");
    const changes: Record<string, unknown>[] = [
      { on_complete: "https://example.com/hook" },
      { output_format: "structured", output_schema: { type: "object" } },
      { requires_mcp: ["github"] },
      { timezone: "America/New_York" },
    ];
    for (const change of changes) {
      const r = await s.tool("update_cron", { job: "report", ...change });
      const field = Object.keys(change).at(-1)!;
      expect(r.job.state, field).toBe("pending_approval");
      expect(r.summary).toContain(`sent back for a person's approval because ${field} changed (they approve it with: agent-cron approve report)`);
      const approved = await cli(["approve", "report"], s.dataDir);
      expect(approved.code, approved.stderr).toBe(0);
    }
    const job = (await s.tool("get_cron", { job: "report" })).job;
    expect(job.approvals.map((e: { event: string; via: string }) => `${e.event}/${e.via}`)).toEqual([
      "approved/elicitation",
      ...changes.flatMap(() => ["sent_back/mcp", "approved/cli"]),
    ]);
    expect(job.approvals[1]).toMatchObject({ by: "e2e-client/1.0.0", fields: ["on_complete"] });
  }, 120_000);
});

describe("elicitation answers", () => {
  it("cancel (what claude -p answers without showing anything) keeps the job pending_approval; decline stores nothing", async () => {
    let action: "cancel" | "decline" = "cancel";
    const s = await start({ config: { approval: "ask" }, onElicit: () => ({ action }) });
    const kept = await s.tool("add_cron", { name: "unanswered", schedule: "@daily", prompt: "p" });
    expect(kept.job.state).toBe("pending_approval");
    expect(kept.summary).toMatch(
      /^Waiting for a person's approval \(agent-cron approve unanswered\): .* The question was dismissed without an answer, so the job is kept for a person to decide\.( Warning: .*)?$/,
    );
    action = "decline";
    expect(await s.toolError("add_cron", { name: "refused", schedule: "@daily", prompt: "p" })).toBe(
      "add_cron failed: The user declined to schedule this job; nothing was stored.",
    );
    expect((await s.tool("list_crons")).jobs.map((j: { name: string }) => j.name)).toEqual(["unanswered"]);
  }, 120_000);
});

describe("names that cannot pass for ids", () => {
  it("refuses names that look like an id or its start at add and update, and a lookup that matches a name and an id prefix names both", async () => {
    const s = await start({});
    const victim = (await s.tool("add_cron", { name: "victim", schedule: "@daily", prompt: "p" })).job;
    const prefix = victim.id.slice(0, 8);
    expect(await s.toolError("add_cron", { name: prefix, schedule: "@daily", prompt: "p" })).toMatch(
      new RegExp(`^add_cron failed: name "${prefix}" looks like a job id or the start of one \\(8 or more hex digits and dashes\\)`),
    );
    expect(await s.toolError("update_cron", { job: "victim", name: victim.id.toUpperCase() })).toMatch(/^update_cron failed: name ".*" looks like a job id/);
    const cliAdd = await cli(["add", "--name", "deadbeef", "--schedule", "@daily", "--prompt", "p"], s.dataDir);
    expect(cliAdd.code).toBe(2);
    expect(cliAdd.stderr).toMatch(/name "deadbeef" looks like a job id/);
    // Names with hex in them are fine when they cannot be taken for an id.
    expect((await s.tool("add_cron", { name: "cafe-job-1", schedule: "@daily", prompt: "p" })).created).toBe(true);

    // A job stored before the rule, named like the victim's id prefix, still loads.
    const impostor = (await s.tool("add_cron", { name: "impostor", schedule: "@daily", prompt: "p" })).job;
    await s.close();
    for (const file of ["jobs.json", "jobs.journal"]) {
      const p = path.join(s.dataDir, file);
      try {
        writeFileSync(p, readFileSync(p, "utf8").replaceAll('"name":"impostor"', `"name":"${prefix}"`));
      } catch {
        // Not every file exists between compactions.
      }
    }
    const again = await start({ dataDir: s.dataDir });
    await waitFor(() => again.stderr().includes(`Job ${impostor.id} is named "${prefix}", which looks like a job id`), { what: "the start-up notice" });
    expect(again.stderr()).toContain(`Rename it: agent-cron update ${impostor.id} --name <new name>`);
    const ambiguous = await cli(["approve", prefix], again.dataDir);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain(
      `"${prefix}" is both the name of job ${impostor.id} and the start of job ${victim.id}'s id; give the whole id of the one you mean.`,
    );
    expect(await again.toolError("pause", { job: prefix })).toContain("is both the name of job");
    // By id it is usable, and renaming it ends the ambiguity.
    const renamed = await cli(["update", impostor.id, "--name", "impostor-renamed"], again.dataDir);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect((await again.tool("pause", { job: prefix })).job.id).toBe(victim.id);
  }, 120_000);
});

describe("config removed or broken while running", () => {
  it("keeps the running config (approval, executors) with a notice when config.json is deleted, corrupted or lowers approval", async () => {
    const s = await start({ config: { approval: "required" } });
    const configFile = path.join(s.dataDir, "config.json");
    const original = readFileSync(configFile, "utf8");
    const notices = () =>
      s
        .notificationsOf("notifications/message")
        .map((n) => JSON.stringify(n.params.data))
        .join("\n");
    const expectKept = async (what: string, pattern: RegExp, name: string) => {
      await waitFor(() => pattern.test(s.stderr()) && pattern.test(notices()), { what: `the notice after ${what}`, timeout: 10_000 });
      const r = await s.tool("add_cron", { name, schedule: "@daily", prompt: "p", executor: "echo" });
      expect(r.job.state, what).toBe("pending_approval");
    };

    rmSync(configFile);
    await expectKept(
      "deleting it",
      /config file .*config\.json was removed; the running config is kept \(approval \\?"required\\?", executors [^)]*echo/,
      "after-delete",
    );

    writeFileSync(configFile, original.slice(0, original.length / 2));
    await expectKept("corrupting it", /is not valid JSON.*The running config is kept \(approval \\?"required\\?"/, "after-corrupt");

    writeFileSync(configFile, JSON.stringify({ ...JSON.parse(original), approval: "none" }));
    await expectKept("lowering approval", /lowers approval from \\?"required\\?" to \\?"none\\?"; a running agent-cron keeps \\?"required\\?"/, "after-lower");
  }, 120_000);
});
