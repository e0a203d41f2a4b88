import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InProcessServer, removeDir } from "../helpers/in-process.js";

const ok = { schedule: "0 9 * * 1-5", prompt: "Audit the logs" };
const encodedUnknownId = Buffer.from("00000000-0000-4000-8000-000000000000").toString("base64url");

/** [what is wrong, tool, arguments, what the one sentence must mention] */
const cases: [string, string, Record<string, unknown>, RegExp][] = [
  ["a cron minute of 60", "add_cron", { ...ok, schedule: "60 * * * *" }, /minute must be 0-59, got 60/],
  ["a day of month of 32", "add_cron", { ...ok, schedule: "0 0 32 * *" }, /day.*32/i],
  ["a cron with 7 fields", "add_cron", { ...ok, schedule: "0 0 0 1 1 * 2030" }, /5 fields.*6.*got 7/],
  ["a cron that never fires (Feb 30)", "add_cron", { ...ok, schedule: "0 0 30 2 *" }, /never fires/],
  ["a one-shot ISO time in the past", "add_cron", { ...ok, schedule: "2020-01-01T09:00" }, /in the past/],
  ["an @every below one second", "add_cron", { ...ok, schedule: "@every 0s" }, /at least 1 second/],
  ["gibberish for a schedule", "add_cron", { ...ok, schedule: "every tuesday-ish" }, /schedule|cron|field/i],
  ["an unknown timezone", "add_cron", { ...ok, timezone: "Mars/Olympus_Mons" }, /Unknown timezone "Mars\/Olympus_Mons"/],
  ["an empty prompt", "add_cron", { ...ok, prompt: "" }, /prompt/],
  ["a prompt of only spaces", "add_cron", { ...ok, prompt: "   \n " }, /prompt is empty/],
  ["a prompt over 32 KiB", "add_cron", { ...ok, prompt: "x".repeat(32 * 1024 + 1) }, /32 KiB/],
  ["an unknown executor", "add_cron", { ...ok, executor: "gpt-9000" }, /Unknown executor "gpt-9000"/],
  ["structured output without output_schema", "add_cron", { ...ok, output_format: "structured" }, /needs an output_schema/],
  [
    "an output_schema that is not a JSON Schema",
    "add_cron",
    { ...ok, output_format: "structured", output_schema: { type: "banana" } },
    /output_schema is not a valid JSON Schema/,
  ],
  ["a number where the schedule string goes", "add_cron", { ...ok, schedule: 5 }, /schedule/],
  ["an unknown field", "add_cron", { ...ok, command: ["rm", "-rf", "/"] }, /command/],
  ["retries of 11", "add_cron", { ...ok, retries: 11 }, /retries/],
  ["a negative timeout", "add_cron", { ...ok, timeout_seconds: -5 }, /timeout_seconds/],
  ["an unknown overlap policy", "add_cron", { ...ok, overlap: "sometimes" }, /overlap/],
  ["a webhook URL that is not http(s)", "add_cron", { ...ok, on_fail: "ftp://example.com/hook" }, /on_fail.*http|http.*on_fail/],
  ["a relative work_dir", "add_cron", { ...ok, work_dir: "projects/app" }, /work_dir must be an absolute path/],
  ["an expires_at in the past", "add_cron", { ...ok, expires_at: "2021-06-01T00:00" }, /expires_at.*in the past/],
  ["a bad cursor for list_crons", "list_crons", { cursor: "not-a-cursor" }, /cursor/],
  ["a cursor of a job that does not exist", "list_crons", { cursor: encodedUnknownId }, /cursor/],
  ["a bad cursor for list_runs", "list_runs", { cursor: "%%%" }, /cursor/],
  ["a limit over 100", "list_runs", { limit: 1000 }, /limit|100/],
  ["an unknown job for pause", "pause", { job: "no-such-job" }, /No job with id or name "no-such-job"/],
  ["an unknown job for resume", "resume", { job: "no-such-job" }, /No job/],
  ["an unknown job for remove", "remove", { job: "no-such-job" }, /No job with id or name "no-such-job"/],
  ["an unknown job for run_now", "run_now", { job: "no-such-job", wait: true }, /No job/],
  ["an unknown job for update_cron", "update_cron", { job: "no-such-job", prompt: "x" }, /No job/],
  ["an unknown run for cancel_run", "cancel_run", { run: "no-such-run" }, /No run/],
];

describe("bad input gets an isError result with one clear sentence, and nothing is stored", () => {
  let s: InProcessServer;
  let root: string;

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(path.join(os.tmpdir(), "agent-cron-roots-")));
    s = await InProcessServer.start({ config: { work_dir_roots: [root] } });
  });
  afterAll(async () => {
    await s?.cleanup();
    await removeDir(root);
  });

  it.each(cases)("refuses %s", async (_what, tool, args, mentions) => {
    const message = await s.toolError(tool, args);
    expect(message).toMatch(mentions);
    expect(message.trim().split("\n").length).toBe(1);
    expect(message.length).toBeLessThan(400);
    expect(message).not.toMatch(/Internal error|TypeError|ReferenceError|\bat .*\.js:\d+/);
    expect((await s.tool("list_crons")).jobs).toEqual([]);
  });

  it("stored nothing on disk after all those refusals", async () => {
    const journal = path.join(s.dataDir, "jobs.journal");
    // Only the header that names the journal: no change was written.
    if (existsSync(journal))
      expect(
        readFileSync(journal, "utf8")
          .split("\n")
          .filter((l) => l && !l.startsWith('{"journal":')),
      ).toEqual([]);
    const snapshot = path.join(s.dataDir, "jobs.json");
    if (existsSync(snapshot)) expect(JSON.parse(readFileSync(snapshot, "utf8")).jobs).toEqual([]);
    const runsDir = path.join(s.dataDir, "runs");
    // No run log; the index of open runs (open.jsonl) may exist, listing none.
    if (existsSync(runsDir)) expect(readdirSync(runsDir).filter((f) => f !== "open.jsonl")).toEqual([]);
    const index = path.join(runsDir, "open.jsonl");
    if (existsSync(index))
      expect(
        readFileSync(index, "utf8")
          .split("\n")
          .filter((l) => l.startsWith('{"open"')),
      ).toEqual([]);
    expect((await s.tool("list_runs")).runs).toEqual([]);
  });

  it("is still up and accepts good input afterwards", async () => {
    const { job, created } = await s.tool("add_cron", { ...ok, name: "good", work_dir: root });
    expect(created).toBe(true);
    expect(job.name).toBe("good");
    expect((await s.job("good")).work_dir).toBe(root);
    expect((await s.tool("list_crons")).jobs.length).toBe(1);
  });
});
