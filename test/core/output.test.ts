import { describe, expect, it, vi } from "vitest";
import { MAX_SCHEMA_DEPTH, checkOutput, compileOutputSchema, keptOutputSchemas, nestingDepth } from "../../src/core/output.js";
import { memoryBackend, openTestApp } from "../helpers/app.js";
import { UserError } from "../../src/kernel/errors.js";

const structured = (schema: Record<string, unknown>, value: unknown) => checkOutput("structured", schema, JSON.stringify(value), undefined);

describe("output_schema patterns", () => {
  it("match in linear time: a pattern that backtracks exponentially in JavaScript answers at once", async () => {
    const schema = { type: "string", pattern: "^(a+)+$" };
    expect(await structured(schema, "a".repeat(40) + "!")).toMatchObject({ ok: false, error: expect.stringMatching(/must match pattern/) });
    expect(await structured(schema, "a".repeat(100_000))).toEqual({ ok: true, value: "a".repeat(100_000) });
  });

  it("each pattern of a schema keeps its own meaning", async () => {
    const schema = { type: "object", properties: { a: { type: "string", pattern: "^x$" }, b: { type: "string", pattern: "^y$" } } };
    expect((await structured(schema, { a: "x", b: "y" })).ok).toBe(true);
    expect(await structured(schema, { a: "x", b: "x" })).toMatchObject({ ok: false, error: expect.stringMatching(/\/b must match pattern "\^y\$"/) });
  });

  it("apply to patternProperties too", async () => {
    const schema = { type: "object", patternProperties: { "^(x+)+$": { type: "number" } } };
    expect((await structured(schema, { xxx: 1 })).ok).toBe(true);
    expect((await structured(schema, { xxx: "one" })).ok).toBe(false);
  });

  it("keep JavaScript's \\u escapes and Unicode classes", async () => {
    expect((await structured({ type: "string", pattern: "^caf\\u00e9$" }, "café")).ok).toBe(true);
    expect((await structured({ type: "string", pattern: "^\\p{L}+$" }, "Grüße")).ok).toBe(true);
    expect((await structured({ type: "string", pattern: "^\\p{L}+$" }, "a1")).ok).toBe(false);
    // An escaped backslash before "u" is a literal backslash and "u", not an escape.
    expect((await structured({ type: "string", pattern: "^\\\\u0041$" }, "\\u0041")).ok).toBe(true);
  });

  it("refuse lookaround and backreferences with a reason, as the caller's error", async () => {
    await expect(compileOutputSchema({ type: "string", pattern: "(a)\\1" })).rejects.toThrow(UserError);
    await expect(compileOutputSchema({ type: "string", pattern: "^(?!x)" })).rejects.toThrow(/is not supported .*without lookaround or backreferences/);
  });
});

describe("compiled output_schemas live as long as their jobs", () => {
  const schemaNo = (i: number) => ({ $id: `https://example.com/report-${i % 7}.json`, type: "object", required: ["n"], properties: { n: { const: i } } });

  it("500 add and remove cycles of jobs with an output_schema keep nothing compiled, and the same $id may come back with another schema", async () => {
    const { app } = await openTestApp({ backend: memoryBackend });
    for (let i = 0; i < 500; i++) {
      const { job } = await app.jobs.add({ schedule: "@daily", prompt: "p", output_format: "structured", output_schema: schemaNo(i) }, "test");
      await app.jobs.remove(job.id);
    }
    expect(keptOutputSchemas()).toBe(0);
  });

  it("a run's validator is kept while its job uses the schema and freed when the job goes or its schema changes", async () => {
    const { app, exec } = await openTestApp({ backend: memoryBackend });
    const a = (await app.jobs.add({ name: "a", schedule: "@daily", prompt: "p", retries: 0, output_format: "structured", output_schema: schemaNo(1) }, "test"))
      .job;
    const b = (await app.jobs.add({ name: "b", schedule: "@daily", prompt: "p", retries: 0, output_format: "structured", output_schema: schemaNo(1) }, "test"))
      .job;
    const runOnce = async (job: string, output: string) => {
      const run = await app.jobs.runNow(job);
      await vi.waitFor(() => expect(exec.calls.length).toBeGreaterThan(0), { timeout: 5000, interval: 5 });
      exec.finishAll({ output });
      exec.calls.length = 0;
      return app.queries.waitForRun(run.id);
    };
    expect((await runOnce("a", '{"n": 1}')).status).toBe("completed");
    expect(keptOutputSchemas()).toBe(1);
    // b shares the schema: removing a keeps it.
    await app.jobs.remove(a.id);
    expect(keptOutputSchemas()).toBe(1);
    await app.jobs.update(b.id, { output_schema: schemaNo(2) });
    expect(keptOutputSchemas()).toBe(0);
    expect((await runOnce("b", '{"n": 1}')).status).toBe("failed");
    expect(keptOutputSchemas()).toBe(1);
    await app.jobs.remove(b.id);
    expect(keptOutputSchemas()).toBe(0);
  });

  it("refuses a schema nested too deep with its depth and the limit, not a stack overflow", async () => {
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 20_000; i++) deep = { type: "object", properties: { a: deep } };
    const { app } = await openTestApp({ backend: memoryBackend });
    await expect(app.jobs.add({ schedule: "@daily", prompt: "p", output_format: "structured", output_schema: deep }, "test")).rejects.toThrow(
      new UserError(
        `output_schema is nested ${nestingDepth(deep)} levels deep; the limit is ${MAX_SCHEMA_DEPTH}. Describe deep or recursive shapes with $defs and $ref.`,
      ),
    );
    expect(nestingDepth(deep)).toBe(40_001);
  });
});
