/**
 * Output schemas that several tools list carry one `$id` (src/mcp/tool.ts), so an SDK client,
 * which compiles a validator for every tool's output schema on listTools(), compiles each of
 * them once: AjvJsonSchemaValidator.getValidator takes a `$id` it knows from Ajv's cache.
 */
import { Ajv, type AnySchema } from "ajv";
import addFormats from "ajv-formats";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { JsonSchemaType, JsonSchemaValidator, jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { toolDefinitions } from "../../src/mcp/tool.js";
import { tools as toolDefs } from "../../src/mcp/tools/index.js";
import { VERSION } from "../../src/version.js";
import { InProcessServer } from "../helpers/in-process.js";

const YEARLY = "0 0 1 1 *";
const JOB_ANSWER_TOOLS = ["add_cron", "pause", "resume", "update_cron"];

/** A tool's output schema as it would be without an id. */
function withoutId(t: Tool): string {
  const { $id: _id, ...rest } = t.outputSchema as Record<string, unknown>;
  return JSON.stringify(rest);
}
const idOf = (t: Tool) => (t.outputSchema as { $id?: string }).$id;

/** The SDK's own validator over an Ajv set up as the SDK's default one, recording each check. */
class RecordingValidator implements jsonSchemaValidator {
  readonly checks: { id: string | undefined; valid: boolean }[] = [];
  private readonly inner: AjvJsonSchemaValidator;
  constructor(ajv: Ajv) {
    this.inner = new AjvJsonSchemaValidator(ajv);
  }
  getValidator<T>(schema: JsonSchemaType): JsonSchemaValidator<T> {
    const check = this.inner.getValidator<T>(schema);
    return (input) => {
      const result = check(input);
      this.checks.push({ id: (schema as { $id?: string }).$id, valid: result.valid });
      return result;
    };
  }
}

describe("output schemas several tools share", () => {
  const listed = toolDefinitions(toolDefs);

  it("carry one $id in each tool that lists them; a schema no other tool lists carries none", () => {
    for (const a of listed) {
      const twins = listed.filter((b) => b !== a && withoutId(b) === withoutId(a));
      if (twins.length === 0) expect(idOf(a), a.name).toBeUndefined();
      else for (const b of twins) expect(idOf(b), `${a.name} and ${b.name}`).toBe(idOf(a));
    }
    // Two different schemas never under one id.
    for (const a of listed)
      for (const b of listed) if (idOf(a) !== undefined && idOf(a) === idOf(b)) expect(withoutId(b), `${a.name} and ${b.name}`).toBe(withoutId(a));
    // The job answer (SPEC §10) is such a schema; its id names this version.
    const ids = new Set(JOB_ANSWER_TOOLS.map((name) => idOf(listed.find((t) => t.name === name)!)));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(new RegExp(`^urn:agent-cron:${VERSION.replace(/\./g, "\\.")}:[0-9a-f]{12}$`));
    expect(listed.filter((t) => idOf(t) !== undefined).map((t) => t.name)).toEqual(expect.arrayContaining(JOB_ANSWER_TOOLS));
  });

  describe("an SDK Client", () => {
    let s: InProcessServer;
    let compile: ReturnType<typeof vi.spyOn>;
    let validator: RecordingValidator;

    beforeAll(async () => {
      const ajv = new Ajv({ strict: false, validateFormats: true, validateSchema: false, allErrors: true });
      addFormats.default(ajv);
      compile = vi.spyOn(ajv, "compile");
      validator = new RecordingValidator(ajv);
      s = await InProcessServer.start({ client: { jsonSchemaValidator: validator } });
    });
    afterAll(async () => {
      await s?.cleanup();
    });

    it("compiles each distinct output schema once on listTools(), and checks each job answer against the shared one", async () => {
      const { tools } = await s.client.listTools();
      const distinct = new Set(tools.map(withoutId));
      expect(distinct.size).toBeLessThan(tools.length);
      expect(compile).toHaveBeenCalledTimes(distinct.size);
      const sharedId = idOf(tools.find((t) => t.name === "add_cron")!)!;
      expect(compile.mock.calls.filter(([schema]: [AnySchema]) => (schema as { $id?: string }).$id === sharedId)).toHaveLength(1);
      // Listing again compiles nothing: the shared schema comes from Ajv's cache by its id.
      await s.client.listTools();
      expect(compile.mock.calls.filter(([schema]: [AnySchema]) => (schema as { $id?: string }).$id === sharedId)).toHaveLength(1);

      // A real call of each tool that lists it: the client checks the answer against it.
      validator.checks.length = 0;
      const answers = [
        await s.tool("add_cron", { name: "shared", schedule: YEARLY, prompt: "hello" }),
        await s.tool("update_cron", { job: "shared", prompt: "hello again" }),
        await s.tool("pause", { job: "shared" }),
        await s.tool("resume", { job: "shared" }),
      ];
      expect(answers.map((a) => a.job.state)).toEqual(["active", "active", "paused", "active"]);
      expect(validator.checks).toEqual(JOB_ANSWER_TOOLS.map(() => ({ id: sharedId, valid: true })));
      // The shared validator is no rubber stamp: it refuses an answer without its job.
      const check = validator.getValidator({ ...tools.find((t) => t.name === "pause")!.outputSchema } as JsonSchemaType);
      expect(check({ summary: "Paused.", next_runs: [], next_runs_utc: [], warnings: [] }).valid).toBe(false);
      expect(compile.mock.calls.filter(([schema]: [AnySchema]) => (schema as { $id?: string }).$id === sharedId)).toHaveLength(1);
    });
  });
});
