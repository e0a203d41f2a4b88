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
 */
export function exactCheck(schema: z.ZodType): (value: unknown) => boolean {
  return compile(schema) ?? never;
}

type Check = (value: unknown) => boolean;
const never: Check = () => false;

/** Null for a schema part this check does not know: the whole value then goes to zod. */
function compile(schema: z.ZodType): Check | null {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
  // Refinements (min, int, regex), coercion and custom checks are zod's to judge.
  if ((def.checks as unknown[] | undefined)?.length || def.coerce) return null;
  switch (def.type) {
    case "string":
      return (v) => typeof v === "string";
    case "number":
      // zod refuses NaN and ±Infinity (JSON.parse makes Infinity of 1e999).
      return (v) => typeof v === "number" && Number.isFinite(v);
    case "boolean":
      return (v) => typeof v === "boolean";
    case "unknown":
    case "any":
      return () => true;
    case "enum": {
      const values = new Set(Object.values(def.entries as Record<string, unknown>));
      return (v) => values.has(v);
    }
    case "nullable": {
      const inner = compile(def.innerType as z.ZodType);
      return inner && ((v) => v === null || inner(v));
    }
    case "optional": {
      const inner = compile(def.innerType as z.ZodType);
      return inner && ((v) => v === undefined || inner(v));
    }
    case "default": {
      // A value that is there is parsed by the inner schema; one that is not gets the default (zod's job).
      const inner = compile(def.innerType as z.ZodType);
      return inner && ((v) => v !== undefined && inner(v));
    }
    case "array": {
      const element = compile(def.element as z.ZodType);
      return (
        element &&
        ((v) => {
          if (!Array.isArray(v)) return false;
          for (let i = 0; i < v.length; i++) if (!element(v[i])) return false;
          return true;
        })
      );
    }
    case "record": {
      const key = (def.keyType as { _zod: { def: { type: string; checks?: unknown[] } } })._zod.def;
      const value = compile(def.valueType as z.ZodType);
      if (key.type !== "string" || key.checks?.length || !value) return null;
      return (v) => {
        if (!plainObject(v)) return false;
        // zod leaves out an own "__proto__" key (JSON.parse makes one): not the same value.
        for (const k in v) if (k === "__proto__" || !value(v[k])) return false;
        return true;
      };
    }
    case "object": {
      // A key the schema does not name would be stripped by zod: no.
      if (def.catchall !== undefined) return null;
      const shape = def.shape as Record<string, z.ZodType>;
      const keys = Object.keys(shape);
      const checks: Check[] = [];
      for (const k of keys) {
        const c = compile(shape[k]);
        if (!c) return null;
        checks.push(c);
      }
      const known = new Set(keys);
      return (v) => {
        if (!plainObject(v)) return false;
        for (let i = 0; i < keys.length; i++) if (!checks[i](v[keys[i]])) return false;
        for (const k in v) if (!known.has(k)) return false;
        return true;
      };
    }
    default:
      return null;
  }
}

function plainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
