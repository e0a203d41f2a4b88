import { Ajv, type ValidateFunction } from "ajv";
import { RE2JS } from "re2js";

/**
 * The ajv instance that checks `structured` outputs, with RE2 for `pattern` and
 * `patternProperties`. Imported lazily by output.ts (ajv and re2js cost ~13 MB and ~40 ms;
 * most servers never see a structured job), statically here so that ajv's CommonJS exports
 * arrive named whether it is bundled or not.
 *
 * A caller's `pattern` runs on every answer the agent gives, on the main thread. With
 * JavaScript's backtracking RegExp, `^(a+)+$` against 28 characters froze the server for
 * seconds. RE2 (re2js, pure JS) matches in time linear in the input, so no pattern can stall
 * the server; it lacks lookaround and backreferences, and a schema using them is refused
 * when the job is made, with that reason.
 */
const OPTIONS = { allErrors: false, strict: false, code: { regExp: linearRegExp as never } };
export const validator = new Ajv(OPTIONS);

/**
 * A job's output_schema, compiled in an ajv of its own, checked first against the JSON Schema
 * meta-schema by the shared one (which compiles only the meta-schema, never a job's schema).
 * An ajv keeps every schema it compiled, with its `$id`, for as long as it lives; one per
 * schema lets a job's schema be freed with its job, and two jobs may use the same `$id`.
 */
export function compileIsolated(schema: Record<string, unknown>): ValidateFunction {
  if (!validator.validateSchema(schema)) throw new Error(validator.errorsText(validator.errors, { dataVar: "output_schema" }));
  return new Ajv({ ...OPTIONS, validateSchema: false }).compile(schema);
}

function linearRegExp(pattern: string): { test: (s: string) => boolean; toString: () => string } {
  // ECMA-262's \uXXXX and \u{X…} are RE2's \x{…}.
  const re2Syntax = pattern.replace(
    /(?<!\\)((?:\\\\)*)\\u(?:\{([0-9a-fA-F]{1,6})\}|([0-9a-fA-F]{4}))/g,
    (_m, pre: string, braced?: string, four?: string) => `${pre}\\x{${braced ?? four}}`,
  );
  let re: RE2JS;
  try {
    re = RE2JS.compile(re2Syntax);
  } catch (err) {
    throw new Error(
      `pattern ${JSON.stringify(pattern)} is not supported (${(err as Error).message}); patterns are matched in linear time, without lookaround or backreferences`,
    );
  }
  // ajv keys its compiled patterns by toString(): each must be told apart.
  return { test: (s: string) => re.matcher(s).find(), toString: () => `re2:${pattern}` };
}
