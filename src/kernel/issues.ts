import type { z } from "zod";

/**
 * One plain sentence for the first problem zod found in a caller's input, naming the field:
 * `retries must be at most 10, got 11`, `unknown field "comand"`. Used for tool arguments,
 * CLI flags and config keys alike.
 */
export function describeIssue(issue: z.core.$ZodIssue, input: unknown, prefix = ""): string {
  const where = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
  const field = where || "the input";
  const value = valueAt(input, issue.path);
  switch (issue.code) {
    case "unrecognized_keys": {
      const keys = issue.keys.map((k) => quote(k)).join(", ");
      return `${issue.keys.length > 1 ? "unknown fields" : "unknown field"} ${keys}${where ? ` in ${where}` : ""}; check the spelling against the schema.`;
    }
    case "invalid_type":
      return value === undefined ? `${field} is required.` : `${field} must be ${article(issue.expected)}, got ${kindOf(value)}.`;
    case "too_big":
    case "too_small": {
      const bound = issue.code === "too_big" ? issue.maximum : issue.minimum;
      const word = issue.code === "too_big" ? "at most" : "at least";
      const unit = issue.origin === "string" ? " characters" : issue.origin === "array" || issue.origin === "set" ? " items" : "";
      const got =
        typeof value === "string"
          ? `${value.length} characters`
          : Array.isArray(value)
            ? `${value.length} items`
            : typeof value === "number"
              ? String(value)
              : "";
      if (issue.origin === "number" && !issue.inclusive)
        return `${field} must be ${issue.code === "too_big" ? "below" : "above"} ${bound}${got ? `, got ${got}` : ""}.`;
      return `${field} must be ${word} ${bound}${unit}${got ? `, got ${got}` : ""}.`;
    }
    case "invalid_value":
      return `${field} must be ${issue.values.length === 1 ? quote(issue.values[0]) : `one of ${issue.values.map(quote).join(", ")}`}${value === undefined ? "" : `, got ${quote(value)}`}.`;
    case "not_multiple_of":
      return `${field} must be a whole number${typeof value === "number" ? `, got ${value}` : ""}.`;
    default:
      return `${field}${issue.message.startsWith("must ") ? " " : ": "}${issue.message}${issue.message.endsWith(".") ? "" : "."}`;
  }
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let cur = input;
  for (const key of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return `the string ${quote(value)}`;
  return `${typeof value} ${quote(value)}`;
}

function article(type: string): string {
  return type === "int" ? "a whole number" : /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/**
 * Quotes a caller's value for a message: JSON-escaped (one line) and cut to a readable length.
 * An object, an array or null is named by its kind instead: String() of an object runs its own
 * toString, which a caller's JSON can make throw ({"toString": "x"}: an internal error).
 */
export function quote(value: unknown): string {
  if (value === null || typeof value === "object") return kindOf(value);
  const text = JSON.stringify(typeof value === "string" ? value : String(value)) ?? '""';
  return text.length > 80 ? `${text.slice(0, 77)}…"` : text;
}
