import type { ValidateFunction } from "ajv";
import { UserError } from "../kernel/errors.js";
import { RESPONSE_CAP_BYTES } from "./jobs.js";

/**
 * Compiled validators of the output_schemas that runs used, by schema text; ajv itself loads
 * with the first one (output-validator.ts). Each lives in an ajv of its own, so forgetting
 * it (its job removed, or its schema changed: forgetOutputSchema) frees it, `$id`s and all.
 */
const compiled = new Map<string, ValidateFunction>();
/** A backstop: the least recently used validator goes past this many. */
const MAX_COMPILED = 500;
/** Deeper schemas are refused: compiling one recurses per level, and a deep enough one overflows the stack. */
export const MAX_SCHEMA_DEPTH = 64;

/** How deeply objects and arrays nest in `value`, counted without recursion (a deep value must not overflow the stack here either). */
export function nestingDepth(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth > max) max = depth;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
  }
  return max;
}

/** Refuses a schema nested deeper than MAX_SCHEMA_DEPTH, saying how deep it is. */
export function checkSchemaDepth(schema: Record<string, unknown>): void {
  const depth = nestingDepth(schema);
  if (depth > MAX_SCHEMA_DEPTH) {
    throw new UserError(
      `output_schema is nested ${depth} levels deep; the limit is ${MAX_SCHEMA_DEPTH}. Describe deep or recursive shapes with $defs and $ref.`,
    );
  }
}

/**
 * Compiles a job's output_schema; a schema ajv rejects, or one nested too deep, is the
 * caller's error. `keep` caches the validator for the runs to come (until
 * forgetOutputSchema); without it (checking a schema at add or update), nothing is kept.
 */
export async function compileOutputSchema(schema: Record<string, unknown>, opts: { keep?: boolean } = {}): Promise<ValidateFunction> {
  checkSchemaDepth(schema);
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (validate) {
    // Most recently used last, so the backstop drops the least used.
    compiled.delete(key);
    compiled.set(key, validate);
    return validate;
  }
  const { compileIsolated } = await import("./output-validator.js");
  try {
    validate = compileIsolated(schema);
  } catch (err) {
    throw new UserError(`output_schema is not a valid JSON Schema: ${(err as Error).message}`);
  }
  if (opts.keep) {
    compiled.set(key, validate);
    for (const old of compiled.keys()) {
      if (compiled.size <= MAX_COMPILED) break;
      compiled.delete(old);
    }
  }
  return validate;
}

/** Frees every kept validator whose schema text is not in `used`. */
export function forgetUnusedOutputSchemas(used: ReadonlySet<string>): void {
  for (const key of [...compiled.keys()]) if (!used.has(key)) compiled.delete(key);
}

/** How many compiled output_schemas are kept (for tests and the bench). */
export function keptOutputSchemas(): number {
  return compiled.size;
}

export type Checked = { ok: true; value: unknown } | { ok: false; error: string };

/** Applies a job's output_format to what the agent answered. */
export async function checkOutput(
  format: "text" | "json" | "structured",
  schema: Record<string, unknown> | null,
  text: string,
  structured: unknown,
): Promise<Checked> {
  if (format === "text") return { ok: true, value: text };
  let value = structured;
  if (value === undefined || value === null) {
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { ok: false, error: `The output is not valid JSON (${(err as Error).message}).` };
    }
  }
  if (format === "json") return { ok: true, value };
  const validate = await compileOutputSchema(schema ?? {}, { keep: true });
  if (validate(value)) return { ok: true, value };
  const e = validate.errors?.[0];
  return {
    ok: false,
    error: `The output does not match output_schema: ${e ? `${e.instancePath || "(root)"} ${e.message}` : "invalid"}.`,
  };
}

/** The first `maxBytes` of a string, cut on a UTF-8 character boundary. */
export function cutUtf8(text: string, maxBytes = RESPONSE_CAP_BYTES): { text: string; cut: boolean } {
  if (text.length <= maxBytes / 4 || Buffer.byteLength(text) <= maxBytes) return { text, cut: false };
  const buf = Buffer.from(text).subarray(0, maxBytes);
  // Back off continuation bytes (10xxxxxx) and the lead byte they belong to.
  let end = buf.length;
  let i = end - 1;
  while (i > 0 && (buf[i] & 0xc0) === 0x80) i--;
  const lead = buf[i];
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (end - i < need) end = i;
  return { text: buf.subarray(0, end).toString("utf8"), cut: true };
}
