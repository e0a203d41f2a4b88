import type { z } from "zod";

/**
 * A check compiled once from a zod schema that answers one question fast: would the schema
 * accept this value exactly as it is, with nothing to fill in, strip, coerce or transform?
 * When it says yes the value can be used as it is; when it says no the caller asks zod, which
 * fills in defaults or names the problem. So it may say no too often (any part of a schema it
 * does not know, such as a refinement or a preprocess, is always no) but never yes wrongly.
 *
 * Why: at start-up the job store validates each of up to 100,000 jobs read from its own file.
 * zod builds a fresh copy of every object and array it parses; this check allocates nothing.
 *
 * The check is generated as one function per object, array and record (as zod's own fast path
 * and ajv do): a tree of closures, one a field, cost ~7 µs a job (62 fields), most of it calls
 * through sites that met every kind of check; straight-line code reads each field once.
 * Only the schema, never a value, goes into the code (names as JSON string literals).
 */
export function exactCheck(schema: z.ZodType): (value: unknown) => boolean {
  const gen = new Generator();
  const root = gen.check(schema, "v");
  if (root === null) return never;
  const body = `${gen.functions.join("\n")}\nreturn (v) => ${root};`;
  return new Function("plainObject", "sets", body)(plainObject, gen.sets) as (value: unknown) => boolean;
}

const never = (): boolean => false;

class Generator {
  /** Function declarations, one per object, array and record part. */
  readonly functions: string[] = [];
  /** Sets of allowed values for enums whose values cannot be written as literals. */
  readonly sets: Set<unknown>[] = [];

  /** A JS expression that is true when `x` (an identifier) passes; null for a part this check does not know. */
  check(schema: z.ZodType, x: string): string | null {
    const def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
    // Refinements (min, int, regex), coercion and custom checks are zod's to judge.
    if ((def.checks as unknown[] | undefined)?.length || def.coerce) return null;
    switch (def.type) {
      case "string":
        return `typeof ${x} === "string"`;
      case "number":
        // zod refuses NaN and ±Infinity (JSON.parse makes Infinity of 1e999); false for a non-number.
        return `Number.isFinite(${x})`;
      case "boolean":
        return `typeof ${x} === "boolean"`;
      case "unknown":
      case "any":
        return "true";
      case "enum": {
        const values = Object.values(def.entries as Record<string, unknown>);
        if (values.length > 0 && values.every((e) => typeof e === "string" || (typeof e === "number" && Number.isFinite(e)))) {
          return `(${values.map((e) => `${x} === ${JSON.stringify(e)}`).join(" || ")})`;
        }
        this.sets.push(new Set(values));
        return `sets[${this.sets.length - 1}].has(${x})`;
      }
      case "nullable": {
        const inner = this.check(def.innerType as z.ZodType, x);
        return inner && `(${x} === null || ${inner})`;
      }
      case "optional": {
        const inner = this.check(def.innerType as z.ZodType, x);
        return inner && `(${x} === undefined || ${inner})`;
      }
      case "default": {
        // A value that is there is parsed by the inner schema; one that is not gets the default (zod's job).
        const inner = this.check(def.innerType as z.ZodType, x);
        return inner && `(${x} !== undefined && ${inner})`;
      }
      case "array": {
        const element = this.check(def.element as z.ZodType, "e");
        if (element === null) return null;
        return this.declare(
          `if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) { const e = v[i]; if (!(${element})) return false; }
  return true;`,
          x,
        );
      }
      case "record": {
        const key = (def.keyType as { _zod: { def: { type: string; checks?: unknown[] } } })._zod.def;
        const value = this.check(def.valueType as z.ZodType, "e");
        if (key.type !== "string" || key.checks?.length || value === null) return null;
        // zod leaves out an own "__proto__" key (JSON.parse makes one): not the same value.
        return this.declare(
          `if (!plainObject(v)) return false;
  for (const k in v) { if (k === "__proto__") return false; const e = v[k]; if (!(${value})) return false; }
  return true;`,
          x,
        );
      }
      case "object": {
        // A key the schema does not name would be stripped by zod: no.
        if (def.catchall !== undefined) return null;
        const shape = def.shape as Record<string, z.ZodType>;
        const lines: string[] = [];
        for (const [k, field] of Object.entries(shape)) {
          const c = this.check(field, "e");
          if (c === null) return null;
          lines.push(`e = v[${JSON.stringify(k)}]; if (!(${c})) return false;`);
        }
        const known = Object.keys(shape)
          .map((k) => `case ${JSON.stringify(k)}:`)
          .join(" ");
        return this.declare(
          `if (!plainObject(v)) return false;
  let e;
  ${lines.join("\n  ")}
  for (const k in v) switch (k) { ${known} break; default: return false; }
  return true;`,
          x,
        );
      }
      default:
        return null;
    }
  }

  /** Declares a function over `v` with this body; the expression that calls it on `x`. */
  private declare(body: string, x: string): string {
    const name = `f${this.functions.length}`;
    this.functions.push(`function ${name}(v) {\n  ${body}\n}`);
    return `${name}(${x})`;
  }
}

function plainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
