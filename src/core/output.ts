import type { Ajv as AjvClass, ValidateFunction } from "ajv";
import type { RE2JS as RE2Class } from "re2js";
import { UserError } from "./errors.js";
import { RESPONSE_CAP_BYTES } from "./jobs.js";

/**
 * A caller's `pattern` (and `patternProperties`) runs on every answer the agent gives, on the
 * main thread. With JavaScript's backtracking RegExp, `^(a+)+$` against 28 characters froze
 * the server for seconds. RE2 (re2js, pure JS) matches in time linear in the input, so no
 * pattern can stall the server; it lacks lookaround and backreferences, and a schema using
 * them is refused when the job is made, with that reason.
 */
function linearRegExp(RE2JS: typeof RE2Class, pattern: string): { test: (s: string) => boolean; toString: () => string } {
  // ECMA-262's \uXXXX and \u{X…} are RE2's \x{…}.
  const re2Syntax = pattern.replace(/(?<!\\)((?:\\\\)*)\\u(?:\{([0-9a-fA-F]{1,6})\}|([0-9a-fA-F]{4}))/g, (_m, pre: string, braced?: string, four?: string) => `${pre}\\x{${braced ?? four}}`);
  let re: RE2Class;
  try {
    re = RE2JS.compile(re2Syntax);
  } catch (err) {
    throw new Error(`pattern ${JSON.stringify(pattern)} is not supported (${(err as Error).message}); patterns are matched in linear time, without lookaround or backreferences`);
  }
  // ajv keys its compiled patterns by toString(): each must be told apart.
  return { test: (s: string) => re.matcher(s).find(), toString: () => `re2:${pattern}` };
}

/**
 * ajv and re2js cost ~13 MB and ~40 ms to load; most servers never see a structured job, so
 * they load with the first one.
 */
let validator: Promise<AjvClass> | null = null;
function loadValidator(): Promise<AjvClass> {
  validator ??= Promise.all([import("ajv"), import("re2js")]).then(([ajvModule, { RE2JS }]) => {
    // ajv is CommonJS: bundled and imported dynamically, its exports sit under `default`.
    const mod = ajvModule as unknown as { Ajv?: typeof AjvClass; default?: { Ajv?: typeof AjvClass } };
    const Ajv = (mod.Ajv ?? mod.default?.Ajv)!;
    return new Ajv({ allErrors: false, strict: false, code: { regExp: ((p: string) => linearRegExp(RE2JS, p)) as never } });
  });
  return validator;
}
const compiled = new Map<string, ValidateFunction>();

/** Compiles (and caches) a job's output_schema; a schema ajv rejects is the caller's error. */
export async function compileOutputSchema(schema: Record<string, unknown>): Promise<ValidateFunction> {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) {
    const ajv = await loadValidator();
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
