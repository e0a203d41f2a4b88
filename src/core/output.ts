import type { ValidateFunction } from "ajv";
import { UserError } from "./errors.js";
import { RESPONSE_CAP_BYTES } from "./jobs.js";

/** Compiled validators by schema; ajv itself loads with the first one (output-validator.ts). */
const compiled = new Map<string, ValidateFunction>();

/** Compiles (and caches) a job's output_schema; a schema ajv rejects is the caller's error. */
export async function compileOutputSchema(schema: Record<string, unknown>): Promise<ValidateFunction> {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) {
    const { validator: ajv } = await import("./output-validator.js");
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      throw new UserError(`output_schema is not a valid JSON Schema: ${(err as Error).message}`);
    }
    if (compiled.size > 1000) compiled.clear();
    compiled.set(key, validate);
  }
  return validate;
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
  const validate = await compileOutputSchema(schema ?? {});
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
