/**
 * Every tool, one row each: an answer whose structuredContent matches the outputSchema the
 * tool lists (summary first, the same sentence in the text block), and a refusal that is an
 * isError result with one clear sentence starting with the tool's name. A tool added without a
 * row here fails the last test. In process: the SDK Client over the in-memory transport,
 * against the server `serve` builds on a files data dir (test/helpers/in-process.ts).
 */
import { Ajv, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detailedOutputSchema } from "../../src/mcp/tool.js";
import { tools as toolDefs } from "../../src/mcp/tools/index.js";
import { InProcessServer, textOf, type Structured } from "../helpers/in-process.js";

/** Far in the future: these jobs run only when asked. */
const YEARLY = "0 0 1 1 *";

interface Row {
  /** Arguments of a call that succeeds (a function: made once the fixtures exist). */
  answer: Record<string, unknown> | (() => Record<string, unknown>);
  /** What the answer must hold beyond its schema. */
  check: (a: Structured) => void;
  /** Arguments of a call the tool refuses, and what its sentence must say. */
  refuse: Record<string, unknown>;
  says: RegExp;
}

describe("every tool over the SDK's in-memory transport: answers, refusals, schemas", () => {
  let s: InProcessServer;
  let tools: Tool[];
  const validators = new Map<string, ValidateFunction>();
  /** Against every nested field too: tools/list outlines the records inside an answer (src/mcp/tool.ts). */
  const detailed = new Map<string, ValidateFunction>();
  /** Fixtures the rows refer to. */
  const made: { jobId: string; runId: string; slowRunId: string } = { jobId: "", runId: "", slowRunId: "" };

  beforeAll(async () => {
    s = await InProcessServer.start();
    tools = (await s.client.listTools()).tools;
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats.default(ajv);
    // As the SDK's client compiles them: a schema several tools share carries one $id, compiled once (src/mcp/tool.ts).
    const compiled = (schema: Record<string, unknown>) =>
      ((typeof schema.$id === "string" && ajv.getSchema(schema.$id)) || ajv.compile(schema)) as ValidateFunction;
    for (const t of tools) validators.set(t.name, compiled(t.outputSchema!));
    for (const t of toolDefs) detailed.set(t.name, ajv.compile(detailedOutputSchema(t)));
    made.jobId = (await s.tool("add_cron", { name: "fixture", schedule: YEARLY, prompt: "hello" })).job.id;
    made.runId = (await s.tool("run_now", { job: "fixture", wait: true })).run.id;
    await s.tool("add_cron", { name: "slow", schedule: YEARLY, prompt: "20000", executor: "sleep", retries: 0 });
    await s.tool("add_cron", { name: "doomed", schedule: YEARLY, prompt: "x" });
    await s.tool("add_cron", { name: "asleep", schedule: YEARLY, prompt: "x", enabled: false });
    made.slowRunId = (await s.tool("run_now", { job: "slow" })).run.id;
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  const rows: Record<string, Row> = {
    add_cron: {
      answer: { name: "added", schedule: "0 9 * * 1-5", timezone: "Europe/Paris", prompt: "Audit the logs" },
      check: (a) => {
        expect(a.created).toBe(true);
        expect(a.job.name).toBe("added");
        expect(a.next_runs).toHaveLength(3);
      },
      refuse: { schedule: "61 * * * *", prompt: "x" },
      says: /minute must be 0-59, got 61/,
    },
    list_crons: {
      answer: { query: "fixture" },
      check: (a) => expect(a.jobs.map((j: Structured) => j.name)).toEqual(["fixture"]),
      refuse: { cursor: "not-a-cursor" },
      says: /cursor/,
    },
    list_runs: {
      answer: { job: "fixture" },
      check: (a) => expect(a.runs.map((r: Structured) => r.id)).toEqual([made.runId]),
      refuse: { job: "no-such-job" },
      says: /No job with id or name "no-such-job"/,
    },
    get_cron: {
      answer: { job: "fixture" },
      check: (a) => {
        expect(a.job.id).toBe(made.jobId);
        expect(a.recent_runs.map((r: Structured) => r.id)).toEqual([made.runId]);
      },
      refuse: { job: "no-such-job" },
      says: /No job with id or name "no-such-job"/,
    },
    get_run: {
      answer: () => ({ run: made.runId }),
      check: (a) => {
        expect(a.run.status).toBe("completed");
        expect(a.output).toBe("hello");
      },
      refuse: { run: "no-such-run" },
      says: /No run with id "no-such-run"/,
    },
    update_cron: {
      answer: { job: "fixture", prompt: "hello again" },
      check: (a) => expect(a.job.prompt).toBe("hello again"),
      refuse: { job: "fixture", schedule: "0 25 * * *" },
      says: /hour/,
    },
    pause: {
      answer: { job: "fixture" },
      check: (a) => expect(a.job.state).toBe("paused"),
      refuse: { job: "no-such-job" },
      says: /No job with id or name "no-such-job"/,
    },
    resume: {
      answer: { job: "asleep" },
      check: (a) => expect(a.job.state ?? "active").toBe("active"),
      refuse: { job: "no-such-job" },
      says: /No job/,
    },
    remove: {
      answer: { job: "doomed" },
      check: (a) => expect(a.removed).toMatch(/^[0-9a-f-]{36}$/),
      refuse: { job: "no-such-job", keep_runs: true },
      says: /No job with id or name "no-such-job"/,
    },
    run_now: {
      answer: { job: "fixture", wait: true },
      check: (a) => {
        expect(a.run.status).toBe("completed");
        expect(a.run.trigger).toBe("manual");
      },
      refuse: { job: "no-such-job", wait: true },
      says: /No job/,
    },
    cancel_run: {
      answer: () => ({ run: made.slowRunId }),
      check: (a) => expect(a.run.status).toBe("canceled"),
      refuse: { run: "00000000-0000-4000-8000-000000000000" },
      says: /No run/,
    },
    preview_schedule: {
      answer: { schedule: "0 9 * * 1-5", timezone: "America/New_York", count: 2 },
      check: (a) => {
        expect(a.valid).toBe(true);
        expect(a.next_runs).toHaveLength(2);
      },
      // A schedule that does not parse is an answer (valid: false); bad arguments are refused.
      refuse: { schedule: "@daily", count: 1000 },
      says: /count/,
    },
    audit: {
      answer: { job: "fixture", since: "24h" },
      check: (a) => {
        expect(a.jobs_audited).toBe(1);
        expect(a.unaccounted).toBe(0);
      },
      refuse: { since: "last tuesday" },
      says: /since/,
    },
  };

  /** A success: structuredContent valid against the listed outputSchema and the detailed one, summary first and in the text. */
  function expectAnswer(name: string, result: CallToolResult): Structured {
    expect(result.isError, textOf(result)).toBeFalsy();
    const answer = result.structuredContent as Structured;
    expect(answer).toBeDefined();
    const validate = validators.get(name)!;
    expect(validate(answer), JSON.stringify(validate.errors)).toBe(true);
    const validateAll = detailed.get(name)!;
    expect(validateAll(answer), JSON.stringify(validateAll.errors)).toBe(true);
    expect(Object.keys(answer)[0]).toBe("summary");
    expect((result.content[0] as { text: string }).text).toBe(answer.summary);
    return answer;
  }

  /** A refusal: isError, no structuredContent, one line that starts with the tool's name. */
  function expectRefusal(name: string, result: CallToolResult): string {
    expect(result.isError).toBe(true);
    expect(result.structuredContent).toBeUndefined();
    const text = textOf(result);
    expect(text.startsWith(`${name} failed: `), text).toBe(true);
    expect(text.split("\n")).toHaveLength(1);
    expect(text.length).toBeLessThan(400);
    expect(text).not.toMatch(/internal error|TypeError|ReferenceError|\bat .*\.[jt]s:\d+/);
    return text;
  }

  it("lists every tool with an object inputSchema, an outputSchema that starts with summary, a title and annotations", () => {
    expect(tools.map((t) => t.name).sort()).toEqual(Object.keys(rows).sort());
    for (const t of tools) {
      expect(t.inputSchema.type, t.name).toBe("object");
      expect(t.outputSchema?.type, t.name).toBe("object");
      expect(Object.keys(t.outputSchema!.properties!)[0], t.name).toBe("summary");
      expect(t.outputSchema!.required, t.name).toContain("summary");
      expect(t.title, t.name).toBeTruthy();
      expect(t.annotations, t.name).toBeDefined();
    }
  });

  it.each(Object.keys(rows))("%s answers with structuredContent that matches its outputSchema", async (name) => {
    const row = rows[name];
    const args = typeof row.answer === "function" ? row.answer() : row.answer;
    row.check(expectAnswer(name, await s.call(name, args)));
  });

  it.each(Object.keys(rows))("%s refuses bad input with one clear sentence", async (name) => {
    const row = rows[name];
    expect(expectRefusal(name, await s.call(name, row.refuse))).toMatch(row.says);
  });

  it.each(Object.keys(rows))("%s refuses an argument it does not know, naming it", async (name) => {
    expect(expectRefusal(name, await s.call(name, { ...required(name), surprise: 1 }))).toMatch(/surprise/);
  });

  it("refuses a tool that does not exist, naming it", async () => {
    expect(expectRefusal("no_such_tool", await s.call("no_such_tool", {}))).toMatch(/unknown tool "no_such_tool"/);
  });

  /** Each tool's required arguments, filled with a plausible value, so that only the extra one is wrong. */
  function required(name: string): Record<string, unknown> {
    const schema = tools.find((t) => t.name === name)!.inputSchema as { required?: string[] };
    const values: Record<string, unknown> = { job: "fixture", run: made.runId, schedule: "@daily", prompt: "x" };
    return Object.fromEntries((schema.required ?? []).map((k) => [k, values[k]]));
  }
});
