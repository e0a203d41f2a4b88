import { z } from "zod";

type Schema = Record<string, unknown>;

/** Keywords that say nothing about the value: a node made only of these accepts anything. */
const ANNOTATIONS = new Set(["description", "title", "default", "examples", "$schema", "deprecated", "readOnly", "writeOnly"]);
const SUBSCHEMA_MAPS = ["properties", "patternProperties", "$defs", "definitions"];
const SUBSCHEMA_LISTS = ["anyOf", "oneOf", "allOf", "prefixItems"];
const SUBSCHEMAS = ["items", "not", "contains", "if", "then", "else", "propertyNames"];

/**
 * A zod schema as JSON Schema that every MCP client takes (SPEC §10): no `type` arrays
 * (a nullable field is `anyOf` of its type and `null`, described beside the `anyOf`), no
 * schema that constrains nothing (`{}`), no `\p{…}` patterns (Gemini-style and Codex
 * clients reject or strip them; the server checks the value itself anyway).
 */
export function portableJsonSchema(schema: z.ZodType, io: "input" | "output"): Schema {
  const json = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Schema;
  delete json.$schema;
  return portable(json);
}

function portable(node: Schema): Schema {
  let out: Schema = { ...node };
  for (const key of SUBSCHEMA_MAPS) {
    const map = out[key];
    if (map && typeof map === "object") {
      out[key] = Object.fromEntries(Object.entries(map as Record<string, Schema>).map(([k, v]) => [k, portable(v)]));
    }
  }
  for (const key of SUBSCHEMA_LISTS) {
    if (Array.isArray(out[key])) out[key] = (out[key] as Schema[]).map(portable);
  }
  for (const key of SUBSCHEMAS) {
    const sub = out[key];
    if (sub && typeof sub === "object" && !Array.isArray(sub)) out[key] = portable(sub as Schema);
  }
  // `additionalProperties: {}` means "any value": say so with the boolean form.
  const extra = out.additionalProperties;
  if (extra && typeof extra === "object" && constrainsNothing(extra as Schema)) out.additionalProperties = true;
  // A record's keys are strings anyway.
  if (isPlainStringSchema(out.propertyNames)) delete out.propertyNames;
  if (typeof out.pattern === "string" && /\\[pP]\{/.test(out.pattern)) delete out.pattern;

  if (Array.isArray(out.type)) out = splitTypeUnion(out);
  if (Array.isArray(out.anyOf)) out = hoistBranchDescriptions(out);
  return out;
}

function splitTypeUnion(node: Schema): Schema {
  const types = node.type as string[];
  const outer: Schema = {};
  const constraints: Schema = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "type") continue;
    if (ANNOTATIONS.has(k)) outer[k] = v;
    else constraints[k] = v;
  }
  outer.anyOf = types.map((t) => (t === "null" ? { type: "null" } : { type: t, ...constraints }));
  return outer;
}

/** zod writes `.describe()` before `.nullable()` inside the branch; clients read it beside the anyOf. */
function hoistBranchDescriptions(node: Schema): Schema {
  const branches = (node.anyOf as Schema[]).map((b) => ({ ...b }));
  for (const b of branches) {
    if (typeof b.description === "string") {
      if (typeof node.description !== "string") node = { ...node, description: b.description };
      delete b.description;
    }
  }
  return { ...node, anyOf: branches };
}

function constrainsNothing(node: Schema): boolean {
  return Object.keys(node).every((k) => ANNOTATIONS.has(k));
}

function isPlainStringSchema(node: unknown): boolean {
  return !!node && typeof node === "object" && Object.keys(node).length === 1 && (node as Schema).type === "string";
}

/** Every place a schema breaks the rules above, for tests and the benchmark. */
export function portabilityProblems(node: unknown, at = ""): string[] {
  if (!node || typeof node !== "object" || Array.isArray(node)) return [];
  const s = node as Schema;
  const problems: string[] = [];
  if (Array.isArray(s.type)) problems.push(`${at}: type is an array`);
  if (constrainsNothing(s)) problems.push(`${at}: the schema constrains nothing`);
  if (typeof s.pattern === "string" && /\\[pP]\{/.test(s.pattern)) problems.push(`${at}: pattern uses \\p{…}`);
  if (Array.isArray(s.anyOf) && (s.anyOf as Schema[]).some((b) => typeof b?.description === "string")) {
    problems.push(`${at}: a description inside anyOf instead of beside it`);
  }
  for (const key of SUBSCHEMA_MAPS) {
    const map = s[key];
    if (map && typeof map === "object") for (const [k, v] of Object.entries(map)) problems.push(...portabilityProblems(v, `${at}.${key}.${k}`));
  }
  for (const key of SUBSCHEMA_LISTS) {
    if (Array.isArray(s[key])) (s[key] as unknown[]).forEach((v, i) => problems.push(...portabilityProblems(v, `${at}.${key}[${i}]`)));
  }
  for (const key of [...SUBSCHEMAS, "additionalProperties"]) problems.push(...portabilityProblems(s[key], `${at}.${key}`));
  return problems;
}
