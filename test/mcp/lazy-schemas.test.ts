/**
 * Issue 27's RSS: the tools' schemas, the job input's and the run tools' are made when first
 * read, not at import. These check that the first read gives a working schema, that later
 * reads give the same one, and that defining a tool makes none.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { addJobInput, jobFieldsShape, updateJobInput } from "../../src/core/job-input.js";
import { RUN_TOOL_SPECS, parseRunToolArgs } from "../../src/core/run-tools.js";
import { defineTool, ok } from "../../src/mcp/tool.js";
import { tools } from "../../src/mcp/tools/index.js";
import { lazily } from "../../src/kernel/lazy.js";

describe("schemas made on first use", () => {
  it("lazily makes its value once, at the first call, and keeps it (a falsy one too)", () => {
    let made = 0;
    const get = lazily(() => {
      made++;
      return 0;
    });
    expect(made).toBe(0);
    expect(get()).toBe(0);
    expect(get()).toBe(0);
    expect(made).toBe(1);
  });

  it("defineTool makes a tool's schemas when first read, once each, and lists both as config fields", () => {
    const made = { input: 0, output: 0 };
    const tool = defineTool({
      name: "probe",
      config: {
        title: "Probe",
        description: "A tool for this test.",
        inputSchema: () => (made.input++, z.strictObject({ n: z.number() })),
        outputSchema: () => (made.output++, z.object({ n: z.number() })),
        annotations: { readOnlyHint: true },
      },
      handler: () => async (args) => ok("done", { n: args.n }),
    });
    expect(made).toEqual({ input: 0, output: 0 });
    expect(tool.config.inputSchema.safeParse({ n: 1 }).success).toBe(true);
    expect(tool.config.inputSchema.safeParse({ n: "1" }).success).toBe(false);
    expect(tool.config.inputSchema).toBe(tool.config.inputSchema);
    expect(made).toEqual({ input: 1, output: 0 });
    expect(Object.keys(tool.config)).toEqual(expect.arrayContaining(["inputSchema", "outputSchema", "title"]));
    expect(tool.config.outputSchema.shape.n).toBeDefined();
    expect(made).toEqual({ input: 1, output: 1 });
  });

  it("every tool's input schema, made at its first read, takes a valid call and refuses an unknown field", () => {
    const valid: Record<string, Record<string, unknown>> = {
      add_cron: { schedule: "@daily", prompt: "hi" },
      update_cron: { job: "a", schedule: "@daily", name: null },
      list_crons: { limit: 5 },
      list_runs: {},
      get_cron: { job: "a" },
      get_run: { run: "r" },
      pause: { job: "a" },
      resume: { job: "a" },
      remove: { job: "a" },
      run_now: { job: "a" },
      cancel_run: { run: "r" },
      preview_schedule: { schedule: "@daily" },
      audit: {},
    };
    expect(tools.map((t) => t.name).sort()).toEqual(Object.keys(valid).sort());
    for (const t of tools) {
      expect(t.config.inputSchema.safeParse(valid[t.name]).success, t.name).toBe(true);
      expect(t.config.inputSchema.safeParse({ ...valid[t.name], not_a_field: 1 }).success, t.name).toBe(false);
    }
  });

  it("the job input's schemas share one set of fields, made once", () => {
    expect(jobFieldsShape()).toBe(jobFieldsShape());
    expect(addJobInput()).toBe(addJobInput());
    expect(addJobInput().shape.name.unwrap()).toBe(jobFieldsShape().name);
    expect(updateJobInput().safeParse({ name: null }).success).toBe(true);
    expect(addJobInput().safeParse({ schedule: "@daily" }).success).toBe(false);
  });

  it("a run tool's input is made when a call is checked", () => {
    expect(parseRunToolArgs("remember", { note: "  seen #4812 " })).toEqual({ note: "seen #4812" });
    expect(() => parseRunToolArgs("remember", {})).toThrow(/remember/);
    expect(Object.keys(RUN_TOOL_SPECS.reschedule_me.input())).toEqual(["schedule"]);
  });
});
