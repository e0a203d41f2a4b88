import { describe, expect, it } from "vitest";
import { checkOutput, compileOutputSchema } from "../../src/core/output.js";
import { UserError } from "../../src/core/errors.js";

const structured = (schema: Record<string, unknown>, value: unknown) => checkOutput("structured", schema, JSON.stringify(value), undefined);

describe("output_schema patterns", () => {
  it("match in linear time: a pattern that backtracks exponentially in JavaScript answers at once", async () => {
    const schema = { type: "string", pattern: "^(a+)+$" };
    expect(await structured(schema, "a".repeat(40) + "!")).toMatchObject({ ok: false, error: expect.stringMatching(/must match pattern/) });
    expect(await structured(schema, "a".repeat(100_000))).toEqual({ ok: true, value: "a".repeat(100_000) });
  });

  it("each pattern of a schema keeps its own meaning", async () => {
    const schema = { type: "object", properties: { a: { type: "string", pattern: "^x$" }, b: { type: "string", pattern: "^y$" } } };
    expect((await structured(schema, { a: "x", b: "y" })).ok).toBe(true);
    expect(await structured(schema, { a: "x", b: "x" })).toMatchObject({ ok: false, error: expect.stringMatching(/\/b must match pattern "\^y\$"/) });
  });

  it("apply to patternProperties too", async () => {
    const schema = { type: "object", patternProperties: { "^(x+)+$": { type: "number" } } };
    expect((await structured(schema, { xxx: 1 })).ok).toBe(true);
    expect((await structured(schema, { xxx: "one" })).ok).toBe(false);
  });

  it("keep JavaScript's \\u escapes and Unicode classes", async () => {
    expect((await structured({ type: "string", pattern: "^caf\\u00e9$" }, "café")).ok).toBe(true);
    expect((await structured({ type: "string", pattern: "^\\p{L}+$" }, "Grüße")).ok).toBe(true);
    expect((await structured({ type: "string", pattern: "^\\p{L}+$" }, "a1")).ok).toBe(false);
    // An escaped backslash before "u" is a literal backslash and "u", not an escape.
    expect((await structured({ type: "string", pattern: "^\\\\u0041$" }, "\\u0041")).ok).toBe(true);
  });

  it("refuse lookaround and backreferences with a reason, as the caller's error", async () => {
    await expect(compileOutputSchema({ type: "string", pattern: "(a)\\1" })).rejects.toThrow(UserError);
    await expect(compileOutputSchema({ type: "string", pattern: "^(?!x)" })).rejects.toThrow(/is not supported .*without lookaround or backreferences/);
  });
});
