import { describe, expect, it } from "vitest";
import { z } from "zod";
import { describeIssue, quote } from "../../src/kernel/issues.js";

/** The sentence for each issue of parsing `input` with `schema`. */
const sentences = (schema: z.ZodType, input: unknown) => (schema.safeParse(input).error?.issues ?? []).map((i) => describeIssue(i, input));

describe("issues worded for a person", () => {
  it("words a value that is no option without running the caller's own toString (a hostile object is an object, not an internal error)", () => {
    const schema = z.strictObject({ type: z.enum(["light", "medium"]) });
    expect(sentences(schema, { type: { toString: "x", a: 1 } })).toEqual(['type must be one of "light", "medium", got an object.']);
    expect(sentences(schema, { type: [1] })).toEqual(['type must be one of "light", "medium", got an array.']);
    expect(sentences(schema, { type: null })).toEqual(['type must be one of "light", "medium", got null.']);
    expect(sentences(schema, { type: "heavy" })).toEqual(['type must be one of "light", "medium", got "heavy".']);
  });

  it("quotes any value in one short line, an object by its kind", () => {
    expect(quote({ toString: "x" })).toBe("an object");
    expect(quote(Object.create(null))).toBe("an object");
    expect(quote([1])).toBe("an array");
    expect(quote(null)).toBe("null");
    expect(quote(42)).toBe('"42"');
    expect(quote("a".repeat(100))).toBe(`"${"a".repeat(76)}…"`);
  });
});
