import { describe, expect, it } from "vitest";
import { z } from "zod";
import { JobSchema } from "../../src/core/jobs.js";
import { exactCheck } from "../../src/kernel/exact-check.js";
import { STORED_AT, storedJob } from "../helpers/stored-job.js";

const t = STORED_AT;
/** A job as the store writes it, with its nested fields filled: every field there, nothing to default. */
const stored = storedJob({
  name: "a",
  output_format: "structured",
  output_schema: { type: "object", properties: { n: { type: "number" } } },
  max_cost_usd: 0.5,
  approvals: [{ event: "approved", at: t, by: "me", via: "cli" }],
  after: { job: "x", on: "any" },
  schedule_history: [{ at: t, state: "active", schedule: "@daily", timezone: "UTC" }],
  notes: [{ at: t, run_id: "r", text: "remembered" }],
  next_run_at: t,
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
