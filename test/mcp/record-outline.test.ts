/**
 * tools/list outlines each record inside an answer (a job, a run, an audit row) by the fields it
 * always has (src/mcp/tool.ts). A record that allows no other fields says so by counting its
 * keys, which an SDK client's Ajv compiles faster than a long `required` list. These checks run
 * each outline through an Ajv set up as the SDK's default one and hold it to what the detailed
 * schema says: every record with all its fields passes; one that lacks a field it always has, or
 * has a field it never has, fails; one that lacks only an optional field passes.
 */
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { describe, expect, it } from "vitest";
import { detailedOutputSchema, toolDefinitions } from "../../src/mcp/tool.js";
import { tools as toolDefs } from "../../src/mcp/tools/index.js";

type Schema = Record<string, unknown>;

/** Each record node of an answer (an object field, an array's items, an anyOf branch), keyed by where it is. */
function records(schema: Schema): Map<string, Schema> {
  const out = new Map<string, Schema>();
  for (const [field, node] of Object.entries(schema.properties as Record<string, Schema>)) {
    const candidates: [string, unknown][] = [
      [field, node],
      [`${field}[]`, node.items],
      ...((node.anyOf as Schema[] | undefined) ?? []).map((b, i): [string, unknown] => [`${field}.anyOf[${i}]`, b]),
    ];
    for (const [at, n] of candidates) {
      const r = n as Schema | undefined;
      if (r?.type === "object" && (r.properties || r.propertyNames || r.required)) out.set(at, r);
    }
  }
  return out;
}

describe("record outlines in tools/list", () => {
  const ajv = new Ajv({ strict: false, validateFormats: true, validateSchema: false, allErrors: true });
  addFormats.default(ajv);
  const listed = toolDefinitions(toolDefs);
  const cases = toolDefs.flatMap((def) => {
    const outline = records(listed.find((t) => t.name === def.name)!.outputSchema as Schema);
    return [...records(detailedOutputSchema(def))]
      .filter(([at]) => outline.has(at))
      .map(([at, full]) => ({ tool: def.name, at, full, outline: outline.get(at)! }));
  });

  it("outline the job, run and audit records by counting, and the rest by required", () => {
    const counted = cases.filter((c) => c.outline.minProperties !== undefined || c.outline.if !== undefined).map((c) => `${c.tool}.${c.at}`);
    expect(counted).toEqual(expect.arrayContaining(["add_cron.job", "get_cron.job", "get_run.run", "cancel_run.run", "run_now.run", "audit.jobs[]"]));
    // Rows that leave out null fields (list_crons, list_runs) keep the names they always have.
    const rows = cases.filter((c) => c.tool === "list_crons" || c.tool === "list_runs");
    expect(rows.length).toBeGreaterThan(0);
    for (const c of rows) expect(c.outline.required, `${c.tool}.${c.at}`).toEqual(c.full.required);
  });

  it.each(cases.map((c) => [`${c.tool}.${c.at}`, c] as const))("%s: says what the detailed schema says of which fields are there", (_name, c) => {
    const check = ajv.compile(c.outline);
    const names = Object.keys(c.full.properties as Schema);
    const required = (c.full.required as string[] | undefined) ?? [];
    const closed = c.full.additionalProperties === false;
    const record = (keys: string[]) => Object.fromEntries(keys.map((k) => [k, null]));
    expect(check(record(names)), "every field").toBe(true);
    for (const name of required) expect(check(record(names.filter((n) => n !== name))), `without ${name}`).toBe(false);
    for (const name of names.filter((n) => !required.includes(n))) expect(check(record(names.filter((n) => n !== name))), `without ${name}`).toBe(true);
    expect(check(record(required)), "only the fields always there").toBe(true);
    if (closed && c.outline.required === undefined) expect(check({ ...record(names), surprise: 1 }), "a field it never has").toBe(false);
  });
});
