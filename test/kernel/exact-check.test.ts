import { describe, expect, it } from "vitest";
import { z } from "zod";
import { JobSchema } from "../../src/core/jobs.js";
import { exactCheck } from "../../src/kernel/exact-check.js";

const t = "2026-01-01T00:00:00.000+00:00";
/** A job as the store writes it: every field there, nothing to default. */
const stored = JobSchema.parse({
  id: "00000000-0000-4000-8000-000000000001",
  name: "a",
  schedule: "@daily",
  run_at: null,
  timezone: "UTC",
  prompt: "p",
  executor: null,
  work_dir: null,
  session: "isolated",
  session_id: null,
  type: "medium",
  timeout_seconds: 60,
  retries: 0,
  retry_delay_seconds: 1,
  output_format: "structured",
  output_schema: { type: "object", properties: { n: { type: "number" } } },
  overlap: "skip",
  catch_up: "latest",
  max_runs: null,
  expires_at: null,
  max_cost_usd: 0.5,
  pause_after_failures: 5,
  enabled: true,
  state: "active",
  silent: false,
  notify_on: ["completed"],
  on_complete: null,
  on_fail: null,
  approvals: [{ event: "approved", at: t, by: "me", via: "cli" }],
  after: { job: "x", on: "any" },
  schedule_history: [{ at: t, state: "active", schedule: "@daily", timezone: "UTC" }],
  notes: [{ at: t, run_id: "r", text: "remembered" }],
  created_by: "test",
  created_at: t,
  updated_at: t,
  last_run_at: null,
  last_status: null,
  last_error: null,
  last_scheduled_for: null,
  next_run_at: t,
  run_count: 0,
  consecutive_failures: 0,
});
const isJob = exactCheck(JobSchema);
const copy = () => JSON.parse(JSON.stringify(stored)) as Record<string, unknown>;

describe("exactCheck", () => {
  it("says yes to a value zod accepts unchanged, and zod's own parse of it is equal to it", () => {
    const raw = copy();
    expect(isJob(raw)).toBe(true);
    expect(JobSchema.parse(raw)).toEqual(raw);
  });

  it("says no wherever zod would change the value or refuse it, in any nested part", () => {
    const cases: [string, (j: Record<string, unknown>) => void][] = [
      ["a field left to its default", (j) => delete j.on_empty],
      ["a key the schema does not name (zod strips it)", (j) => (j.extra = 1)],
      ["a required field missing", (j) => delete j.prompt],
      ["a value outside its enum", (j) => (j.state = "sleeping")],
      ["a string where a number goes", (j) => (j.retries = "0")],
      ["an infinite number (JSON.parse makes one of 1e999)", (j) => (j.retries = Number.POSITIVE_INFINITY)],
      ["null where it is not allowed", (j) => (j.schedule = null)],
      ["a bad element of a list", (j) => (j.notify_on = ["completed", "exploded"])],
      ["a bad nested object", (j) => ((j.approvals as Record<string, unknown>[])[0].via = "fax")],
      ["a nested object with a key more", (j) => ((j.schedule_history as Record<string, unknown>[])[0].extra = true)],
      ["an optional nested field of the wrong type", (j) => ((j.schedule_history as Record<string, unknown>[])[0].run_at = 5)],
      ["an array where an object goes", (j) => (j.output_schema = [])],
      ["a record holding an own __proto__ key", (j) => (j.output_schema = JSON.parse('{"__proto__": {"x": 1}}'))],
    ];
    for (const [what, change] of cases) {
      const raw = copy();
      change(raw);
      expect(isJob(raw), what).toBe(false);
    }
    expect(isJob(null)).toBe(false);
    expect(isJob([])).toBe(false);
    expect(isJob("job")).toBe(false);
  });

  it("accepts an optional nested field when it is there and valid", () => {
    const raw = copy();
    (raw.approvals as Record<string, unknown>[])[0].fields = ["schedule"];
    (raw.schedule_history as Record<string, unknown>[])[0].run_at = t;
    expect(isJob(raw)).toBe(true);
    expect(JobSchema.parse(raw)).toEqual(raw);
  });

  it("leaves to zod every part of a schema it does not know (refinements, coercion, preprocess): always no", () => {
    for (const schema of [
      z.string().min(2),
      z.number().int(),
      z.coerce.number(),
      z.preprocess((v) => v, z.string()),
      z.object({ a: z.string() }).passthrough(),
    ]) {
      const check = exactCheck(schema);
      for (const v of ["ab", 3, { a: "x" }]) expect(check(v)).toBe(false);
    }
    // The part it knows around one it does not is no as well.
    expect(exactCheck(z.object({ a: z.string(), b: z.string().email() }))({ a: "x", b: "y@z.io" })).toBe(false);
  });
});
