/**
 * Property-based fuzzing of the MCP tools of ONE running server (the built CLI over stdio):
 * thousands of random and hostile argument sets. The server must never crash, every call
 * must return a valid result or an isError result with one clear line, and nothing invalid
 * may be stored. FUZZ_SEED replays a run; FUZZ_SCALE multiplies the number of calls.
 */
import { mkdirSync, mkdtempSync, realpathSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobSchema, MAX_PROMPT_BYTES, type Job } from "../../src/core/jobs.js";
import { scheduleOfJob } from "../../src/core/schedule.js";
import { Server, isAlive, makeDataDir, readDataFiles, removeDir, textOf, type Json } from "./helpers.js";

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));

const TOOLS = [
  "add_cron",
  "list_crons",
  "list_runs",
  "pause",
  "resume",
  "remove",
  "get_cron",
  "update_cron",
  "run_now",
  "cancel_run",
  "preview_schedule",
] as const;
type Tool = (typeof TOOLS)[number];

// Placeholders swapped for a live job or run at call time, so hostile input reaches real jobs.
const JOB = "\u0000$JOB";
const RUN = "\u0000$RUN";

function deep(depth: number): Json {
  let v: Json = { leaf: true };
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

const HUGE = "A".repeat(150_000);
const hostileStrings = [
  "",
  " ",
  "\t",
  "\n",
  "\r\n",
  "\u0000",
  "\u0007bell",
  "\u001b[31mred\u001b[0m",
  "\u007f",
  "\u202eevil",
  "\ud800",
  "\udfff lone",
  "😀".repeat(50),
  "ｆｕｌｌｗｉｄｔｈ",
  "Ω≈ç√∫",
  "ß\u0301",
  "\u200b",
  "\ufeffbom",
  "../../etc/passwd",
  "../../etc",
  "..",
  ".",
  "/",
  "/etc",
  "/etc/passwd",
  "..\\..\\windows\\system32",
  "%2e%2e%2f%2e%2e%2fetc",
  "~/.ssh/id_rsa",
  "/proc/self/environ",
  "//etc",
  "/./etc/../etc",
  "$(id)",
  "`id`",
  "; rm -rf /",
  "| cat /etc/passwd",
  "{prompt}",
  "{work_dir}",
  "${PATH}",
  "%s%s%n",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "null",
  "undefined",
  "NaN",
  "Infinity",
  "-1",
  "1e308",
  "0x10",
  "true",
  "[]",
  "{}",
  "<script>alert(1)</script>",
  "' OR 1=1 --",
  "x".repeat(101),
  "x".repeat(201),
  "x".repeat(4097),
  "é".repeat(17_000),
  "x".repeat(MAX_PROMPT_BYTES + 1),
  HUGE,
  "Mars/Olympus_Mons",
  "Europe/Paris",
  "UTC",
  "Etc/GMT+14",
  "../../../../usr/share/zoneinfo/UTC",
  "America/New_York\n",
  "true",
  "echo",
  "claude",
  "sh",
  "/bin/sh",
  "../fixtures/echo-agent.mjs",
];
const hostileSchedules = [
  "* * * * *",
  "0 9 * * 1-5",
  "@daily",
  "@hourly",
  "@every 1h",
  "@every 90s",
  "in 20m",
  "in 2h30m",
  "2099-01-01T09:00",
  "2099-12-31T23:59:59+14:00",
  "@every 0s",
  "@every 1ms",
  "@every -5s",
  "@every 99999999d",
  "@every 1e308s",
  "in -5m",
  "in 0s",
  "in 99999999999d",
  "60 * * * *",
  "0 24 * * *",
  "0 0 32 * *",
  "0 0 30 2 *",
  "0 0 0 1 1 * 2030",
  "* * * * * * *",
  "*/0 * * * *",
  "L W # ?",
  "@reboot",
  "@yearly",
  "2020-01-01T00:00",
  "1970-01-01T00:00:00Z",
  "9999-99-99T99:99",
  "2026-02-30T09:00",
  "0 0 29 2 1",
  "1-5/2 L * JAN-DEC MON#2",
  "0 0 ? * 5L",
  " ".repeat(150),
  "*".repeat(200),
  "* ".repeat(100),
];
const hostileUrls = [
  "http://127.0.0.1/hook",
  "http://127.0.0.1:8080/",
  "http://10.0.0.1/",
  "http://10.255.255.255/x",
  "http://169.254.169.254/latest/meta-data/",
  "http://[::1]/",
  "http://localhost/",
  "http://localhost:3000/hook",
  "http://LOCALHOST/",
  "http://localhost./",
  "http://foo.localhost/",
  "http://2130706433/",
  "http://0x7f000001/",
  "http://0177.0.0.1/",
  "http://127.1/",
  "http://0.0.0.0/",
  "http://[::]/",
  "http://[::ffff:127.0.0.1]/",
  "http://[::ffff:a9fe:a9fe]/",
  "http://[0:0:0:0:0:ffff:10.0.0.1]/",
  "http://192.168.1.1/",
  "http://172.16.0.1/",
  "http://172.31.255.255/",
  "http://100.64.0.1/",
  "http://[fd00::1]/",
  "http://[fe80::1]/",
  "http://224.0.0.1/",
  "file:///etc/passwd",
  "ftp://example.com/hook",
  "javascript:alert(1)",
  "data:text/plain,hi",
  "gopher://127.0.0.1:6379/_INFO",
  "http://user:pass@example.com/hook",
  "http://example.com:99999/",
  "http://",
  "https://",
  "not a url",
  "https://example.com/hook",
  "https://hooks.example.org/x?y=1#z",
  "http://example.com/" + "a".repeat(3000),
];

/** The operator's root and the paths a caller might try to escape it with. */
let root = "";
const workDirs = () => [
  root,
  `${root}/sub`,
  `${root}/sub/../sub`,
  `${root}/../../etc`,
  `${root}/escape`,
  `${root}/escape/ssh`,
  `${root}/missing`,
  `${root}/sub\u0000`,
  `${root}/sub\n`,
  "/etc",
  "/",
  "/tmp",
  os.tmpdir(),
  "relative/path",
  "../../etc",
  "~",
  "C:\\Windows",
];

const hostileNumber = fc.oneof(
  fc.constantFrom(
    1e308,
    -1e308,
    -1,
    0,
    -0,
    1,
    0.5,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 53),
    2 ** 31,
    2 ** 32,
    1e-320,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    604_800,
    604_801,
    10,
    11,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const hostileString = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...hostileStrings) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(JOB, RUN) },
  { weight: 1, arbitrary: fc.constantFrom(...hostileSchedules) },
  { weight: 1, arbitrary: fc.constantFrom(...hostileUrls) },
);
const leaf = fc.oneof(hostileString, hostileNumber, fc.boolean(), fc.constant(null));
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: leaf },
  { weight: 1, arbitrary: fc.array(leaf, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), leaf, { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      deep(200),
      deep(3000),
      [[[[[[[[]]]]]]]],
      JSON.parse('{"__proto__": {"polluted": true}}'),
      JSON.parse('{"constructor": {"prototype": {"x": 1}}}'),
      Array(50).fill("x"),
    ),
  },
);

const JOB_FIELDS = [
  "name",
  "schedule",
  "prompt",
  "timezone",
  "executor",
  "work_dir",
  "session",
  "type",
  "timeout_seconds",
  "retries",
  "retry_delay_seconds",
  "output_format",
  "output_schema",
  "overlap",
  "catch_up",
  "max_runs",
  "expires_at",
  "max_cost_usd",
  "pause_after_failures",
  "enabled",
  "silent",
  "notify_on",
  "on_complete",
  "on_fail",
];
const OTHER_KEYS = [
  "job",
  "run",
  "keep_runs",
  "wait",
  "state",
  "query",
  "limit",
  "cursor",
  "count",
  "status",
  "id",
  "created_by",
  "session_id",
  "run_count",
  "last_run_at",
  "state",
  "command",
  "bin",
  "args",
  "env",
  "__proto__",
  "constructor",
  "",
];
const anyKey = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...JOB_FIELDS, ...OTHER_KEYS) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) });

/** Plausible values for a field, so that calls get past the first check and into the core. */
function fieldValue(key: string): fc.Arbitrary<unknown> {
  const enums: Record<string, string[]> = {
    session: ["isolated", "persistent"],
    type: ["light", "medium", "resource-intensive"],
    output_format: ["text", "json", "structured"],
    overlap: ["skip", "queue_one", "replace", "allow"],
    catch_up: ["latest", "all", "none"],
    state: ["active", "paused", "completed"],
    status: ["running", "completed", "failed", "missed", "skipped", "interrupted"],
  };
  const plausible: fc.Arbitrary<unknown> | null = Object.hasOwn(enums, key)
    ? fc.constantFrom(...enums[key])
    : key === "schedule"
      ? fc.constantFrom(...hostileSchedules)
      : key === "on_complete" || key === "on_fail"
        ? fc.constantFrom(...hostileUrls)
        : key === "work_dir"
          ? fc.constantFrom(...workDirs())
          : key === "job"
            ? fc.constant(JOB)
            : key === "run"
              ? fc.constant(RUN)
              : key === "notify_on"
                ? fc.subarray(["completed", "failed", "canceled", "bogus"])
                : key === "output_schema"
                  ? fc.constantFrom(
                      { type: "object" },
                      { type: "banana" },
                      { $ref: "http://127.0.0.1/x" },
                      { $ref: "file:///etc/passwd" },
                      { properties: deep(500) },
                      { pattern: "(a+)+$" },
                    )
                  : key === "expires_at"
                    ? fc.constantFrom("2099-01-01T00:00", "2020-01-01T00:00", "tomorrow", "2099-13-01T00:00")
                    : key === "timezone"
                      ? fc.constantFrom("UTC", "Europe/Paris", "Mars/Olympus_Mons", "../../etc/localtime", "Etc/GMT+14", "")
                      : key === "executor"
                        ? fc.constantFrom("true", "echo", "claude", "../true", "sh", "")
                        : ["timeout_seconds", "retries", "retry_delay_seconds", "max_runs", "max_cost_usd", "pause_after_failures", "limit", "count"].includes(
                              key,
                            )
                          ? hostileNumber
                          : ["enabled", "silent", "keep_runs", "wait"].includes(key)
                            ? fc.boolean()
                            : null;
  return plausible ? fc.oneof({ weight: 3, arbitrary: plausible }, { weight: 1, arbitrary: hostileValue }) : hostileValue;
}

const hostileFields = (keys: fc.Arbitrary<string>, max: number) =>
  fc
    .array(
      keys.chain((k) => fieldValue(k).map((v) => [k, v] as const)),
      { maxLength: max },
    )
    .map((pairs) => {
      const out: Json = {};
      for (const [k, v] of pairs) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      return out;
    });

const validAdd = fc.record({
  schedule: fc.constantFrom("0 9 * * 1-5", "@daily", "@every 1h", "in 20m", "2099-01-01T09:00", "0 0 1 1 *", "*/30 * * * * *"),
  prompt: fc.oneof(
    fc.constantFrom("Audit the logs", "ok"),
    fc.string({ minLength: 1, maxLength: 60 }).filter((s) => s.trim().length > 0 && !s.includes("\u0000")),
  ),
});

describe("fuzz: hostile tool arguments against one running server", () => {
  let s: Server;
  let dataDir: string;
  const liveJobs: string[] = [];
  const liveRuns: string[] = [];
  const counts = { calls: 0, ok: 0, isError: 0, byTool: {} as Record<string, { ok: number; err: number }> };
  const violations = new Map<string, string[]>();
  const violate = (kind: string, example: string) => {
    const list = violations.get(kind) ?? [];
    if (list.length < 5) list.push(example.slice(0, 400));
    violations.set(kind, list);
    violations.set(`${kind} (count)`, [String(Number(violations.get(`${kind} (count)`)?.[0] ?? 0) + 1)]);
  };

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(path.join(os.tmpdir(), "agent-cron-fuzz-root-")));
    mkdirSync(path.join(root, "sub"));
    symlinkSync("/etc", path.join(root, "escape"));
    dataDir = makeDataDir(
      {
        default_executor: "true",
        max_concurrent: 2,
        runs_per_job: 5,
        work_dir_roots: [root],
        executors: { true: { type: "command", command: ["/bin/true", "{prompt}"], sandbox: "none" } },
      },
      "agent-cron-fuzz-",
    );
    s = await Server.start(dataDir);
    await s.client.listTools(); // the client then checks every structuredContent against its outputSchema
  });

  afterAll(async () => {
    await s?.close();
    await removeDir(dataDir);
    await removeDir(root);
  });

  const swap = (v: unknown): unknown => {
    const pick = (list: string[], fallback: string) => (list.length ? list[Math.floor(Math.random() * list.length)] : fallback);
    if (v === JOB) return pick(liveJobs, "no-such-job");
    if (v === RUN) return pick(liveRuns, "no-such-run");
    if (Array.isArray(v)) return v.map(swap);
    if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
      const out: Json = {};
      for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: swap(x), enumerable: true, writable: true, configurable: true });
      return out;
    }
    return v;
  };

  async function call(tool: Tool, rawArgs: Json): Promise<void> {
    const args = swap(rawArgs) as Json;
    const label = `${tool} ${safeJson(args)}`;
    let result;
    try {
      result = await s.call(tool, args);
    } catch (err) {
      violate("call threw instead of returning a result", `${label} → ${(err as Error).message}`);
      if (!isAlive(s.pid)) throw new Error(`The server died on ${label}\n${s.stderr().slice(-2000)}`);
      return;
    }
    counts.calls++;
    const t = (counts.byTool[tool] ??= { ok: 0, err: 0 });
    if (result.isError) {
      counts.isError++;
      t.err++;
      const text = textOf(result);
      if (!text.trim()) violate("empty error message", label);
      if (/\n/.test(text.trim())) {
        const sdk = text.startsWith("MCP error -32602: Input validation error");
        violate(
          sdk ? "SDK input validation error is several lines (one per zod issue)" : "error message is more than one line",
          `${label} → ${JSON.stringify(text)}`,
        );
      }
      if (/Internal error|TypeError|ReferenceError|RangeError|SyntaxError|\n\s+at |\bat .*\.[cm]?js:\d+/.test(text))
        violate("internal error or stack trace", `${label} → ${text}`);
      if (text.length > 6000) violate("error message over 6000 characters", `${label} → ${text.length} chars`);
      return;
    }
    counts.ok++;
    t.ok++;
    const sc = result.structuredContent as Json | undefined;
    if (!sc || typeof sc !== "object") return violate("success without structuredContent", label);
    if (tool === "add_cron" && sc.job) {
      liveJobs.push(sc.job.id);
      if (sc.job.name) liveJobs.push(sc.job.name);
    }
    if (tool === "remove") {
      for (let i = liveJobs.length - 1; i >= 0; i--) if (liveJobs[i] === args.job || liveJobs[i] === sc.removed) liveJobs.splice(i, 1);
    }
    if (tool === "run_now" && sc.run) liveRuns.push(sc.run.id);
  }

  it("survives random and hostile argument sets for every tool, answering each with a result or one clear line, storing nothing invalid", async () => {
    const t0 = Date.now();
    console.log(`fuzz seed=${SEED} (FUZZ_SEED=${SEED} replays)`);
    const params = (n: number, offset: number) => ({ numRuns: runs(n), seed: SEED + offset, endOnFailure: true });

    // 1. Any tool, any keys, any values.
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...TOOLS), hostileFields(anyKey, 6), async (tool, args) => call(tool, args)),
      params(1200, 0),
    );
    // 2. add_cron with a valid core, so the hostile fields reach the core's checks.
    await fc.assert(
      fc.asyncProperty(validAdd, hostileFields(fc.constantFrom(...JOB_FIELDS), 3), async (base, extra) => call("add_cron", { ...base, ...extra })),
      params(1000, 1),
    );
    // 3. update_cron of live jobs with hostile patches.
    await fc.assert(
      fc.asyncProperty(hostileFields(fc.constantFrom(...JOB_FIELDS), 3), async (patch) => call("update_cron", { ...patch, job: JOB })),
      params(400, 2),
    );
    // 4. Each job-reference tool with hostile references and flags.
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Tool>("pause", "resume", "remove", "get_cron", "run_now", "cancel_run", "list_runs", "list_crons", "preview_schedule"),
        fc.oneof(fc.constant(JOB), fc.constant(RUN), hostileValue),
        hostileFields(fc.constantFrom("keep_runs", "wait", "status", "limit", "cursor", "state", "query", "count", "timezone"), 2),
        async (tool, ref, extra) => {
          const key = tool === "cancel_run" ? "run" : tool === "preview_schedule" ? "schedule" : tool === "list_crons" ? "query" : "job";
          await call(tool, { ...extra, [key]: ref });
        },
      ),
      params(400, 3),
    );
    // 5. Every webhook URL and work dir on the lists, each at least once.
    for (const url of hostileUrls) {
      await call("add_cron", { schedule: "@daily", prompt: "hook", on_complete: url });
      await call("add_cron", { schedule: "@daily", prompt: "hook", on_fail: url });
      await call("update_cron", { job: JOB, on_fail: url });
    }
    for (const dir of workDirs()) {
      await call("add_cron", { schedule: "@daily", prompt: "dir", work_dir: dir });
      await call("update_cron", { job: JOB, work_dir: dir });
    }
    // 6. Bursts of concurrent hostile calls.
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom(...TOOLS), hostileFields(anyKey, 4)), { minLength: 5, maxLength: 12 }), async (batch) => {
        await Promise.all(batch.map(([tool, args]) => call(tool, args)));
      }),
      params(40, 4),
    );

    // Still up, and the same process.
    expect(isAlive(s.pid)).toBe(true);
    expect((await s.tool("list_crons", { limit: 1 })).jobs).toBeInstanceOf(Array);

    // Nothing invalid stored: what the server holds, and what its files hold, are the same valid jobs.
    // Jobs the fuzz made may be firing (every second, some with jitter), and cron://jobs is
    // read a page at a time: compare once a server read and a file read agree, which a real
    // divergence never does.
    const snapshot = async () => {
      const stored = await s.jobs();
      const files = readDataFiles(dataDir);
      // Fields compared by value, not by the order a reader happened to build them in.
      const sorted = (v: unknown): unknown =>
        Array.isArray(v)
          ? v.map(sorted)
          : v && typeof v === "object"
            ? Object.fromEntries(
                Object.entries(v)
                  .sort(([a], [b]) => (a < b ? -1 : 1))
                  .map(([k, x]) => [k, sorted(x)]),
              )
            : v;
      const canonical = (j: object) => JSON.stringify(sorted(j));
      return { stored, files, sameAsFiles: stored.map(canonical).sort(), inFiles: [...files.jobs.values()].map(canonical).sort() };
    };
    let snap = await snapshot();
    for (let i = 0; i < 20 && JSON.stringify(snap.inFiles) !== JSON.stringify(snap.sameAsFiles); i++) {
      await new Promise((r) => setTimeout(r, 250));
      snap = await snapshot();
    }
    const { stored, files, sameAsFiles, inFiles } = snap;
    const invalid = stored.flatMap((job) => jobProblems(job).map((p) => `${job.id}: ${p}`));
    const fileProblems = files.problems.filter((p) => !p.startsWith("jobs.journal") || !files.tornJournalLine);

    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    console.log(
      `fuzz: ${counts.calls} calls in ${secs} s (${counts.ok} results, ${counts.isError} isError); ${stored.length} jobs stored, all checked; per tool: ` +
        Object.entries(counts.byTool)
          .map(([k, v]) => `${k} ${v.ok}/${v.err}`)
          .join(", "),
    );
    if (violations.size) console.log("fuzz violations:\n" + [...violations].map(([k, v]) => `- ${k}:\n    ${v.join("\n    ")}`).join("\n"));

    expect(counts.calls).toBeGreaterThanOrEqual(runs(2000));
    expect(invalid).toEqual([]);
    expect(fileProblems).toEqual([]);
    expect(inFiles).toEqual(sameAsFiles);
    expect(Object.fromEntries(violations)).toEqual({});
  }, 240_000);

  function jobProblems(job: Job): string[] {
    const problems: string[] = [];
    const parsed = JobSchema.safeParse(job);
    if (!parsed.success) problems.push(`fails JobSchema: ${parsed.error.issues[0]?.path.join(".")} ${parsed.error.issues[0]?.message}`);
    try {
      scheduleOfJob(job);
    } catch (err) {
      problems.push(`schedule ${JSON.stringify(job.schedule)} does not parse: ${(err as Error).message}`);
    }
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: job.timezone });
    } catch {
      problems.push(`timezone ${JSON.stringify(job.timezone)}`);
    }
    if (job.executor !== null && !["true", "echo"].includes(job.executor)) problems.push(`executor ${JSON.stringify(job.executor)} is not in the config`);
    if (Buffer.byteLength(job.prompt) > MAX_PROMPT_BYTES || !job.prompt.trim() || job.prompt.includes("\u0000"))
      problems.push(`prompt of ${Buffer.byteLength(job.prompt)} bytes`);
    if (job.name !== null && !/^[\p{L}\p{N}][\p{L}\p{N} ._:@/-]*$/u.test(job.name)) problems.push(`name ${JSON.stringify(job.name)}`);
    if (job.work_dir !== null) {
      let real = "";
      try {
        real = realpathSync(job.work_dir);
      } catch {
        problems.push(`work_dir ${job.work_dir} does not exist`);
      }
      if (real && real !== root && !real.startsWith(root + path.sep)) problems.push(`work_dir ${job.work_dir} (${real}) is outside ${root}`);
    }
    for (const key of ["on_complete", "on_fail"] as const) {
      const url = job[key];
      if (url !== null && privateTarget(url)) problems.push(`${key} ${url} is a private or non-http target`);
    }
    if (!Number.isInteger(job.retries) || job.retries < 0 || job.retries > 10) problems.push(`retries ${job.retries}`);
    if (!Number.isInteger(job.timeout_seconds) || job.timeout_seconds < 1) problems.push(`timeout_seconds ${job.timeout_seconds}`);
    if (job.max_runs !== null && (!Number.isInteger(job.max_runs) || job.max_runs < 1)) problems.push(`max_runs ${job.max_runs}`);
    if (job.max_cost_usd !== null && !(job.max_cost_usd > 0)) problems.push(`max_cost_usd ${job.max_cost_usd}`);
    if (job.output_format === "structured" && !job.output_schema) problems.push("structured without output_schema");
    return problems;
  }
});

/** Independent of the server's own check: http(s) only, and no loopback/private/link-local literal or local name. */
function privateTarget(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return true;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return true;
  const host = u.hostname
    .replace(/^\[|\]$/g, "")
    .replace(/\.$/, "")
    .toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const v4 = host.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      a >= 224 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  if (host.includes(":")) return host === "::" || host === "::1" || host.startsWith("::ffff:") || /^(fc|fd|fe[89ab]|ff)/.test(host);
  return false;
}

function safeJson(v: unknown): string {
  try {
    const text = JSON.stringify(v) ?? String(v);
    return text.length > 300 ? `${text.slice(0, 300)}…(${text.length} chars)` : text;
  } catch {
    return String(v);
  }
}
