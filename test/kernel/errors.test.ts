import { describe, expect, it } from "vitest";
import {
  AgentCronError,
  ERRORS,
  LockLostError,
  UnauthorizedError,
  UnavailableError,
  UserError,
  codeOf,
  errorFromCode,
  kindOf,
} from "../../src/kernel/errors.js";

describe("coded errors (one registry; callers read the code, never the message)", () => {
  it("gives each error class its code and kind", () => {
    expect([new UserError("x"), new UnauthorizedError("x"), new UnavailableError("x"), new LockLostError("/d")].map((e) => [codeOf(e), kindOf(e)])).toEqual([
      ["AC_BAD_REQUEST", "user"],
      ["AC_UNAUTHORIZED", "user"],
      ["AC_UNAVAILABLE", "unavailable"],
      ["AC_LOCK_LOST", "unavailable"],
    ]);
    // Subclasses stay what they were, so `instanceof` and the code agree.
    expect(new UnauthorizedError("x")).toBeInstanceOf(UserError);
    expect(new LockLostError("/d")).toBeInstanceOf(UnavailableError);
  });

  it("finds the code of an error wrapped as another's cause, and none for foreign errors", () => {
    const inner = new AgentCronError("AC_PRIVATE_ADDRESS", "refused");
    expect(codeOf(new Error("connect failed", { cause: inner }))).toBe("AC_PRIVATE_ADDRESS");
    expect(codeOf(Object.assign(new Error("no file"), { code: "ENOENT" }))).toBeNull();
    expect(codeOf("a string")).toBeNull();
    expect(kindOf(new Error("boom"))).toBe("internal");
  });

  it("rebuilds an error reported by code (the data dir's socket) as the class the code stands for", () => {
    for (const code of Object.keys(ERRORS)) {
      const err = errorFromCode(code, "the sentence");
      expect(err.message).toBe("the sentence");
      expect(codeOf(err)).toBe(code);
      expect(kindOf(err)).toBe(ERRORS[code as keyof typeof ERRORS].kind);
    }
    expect(errorFromCode("AC_UNAUTHORIZED", "m")).toBeInstanceOf(UnauthorizedError);
    expect(errorFromCode("AC_BAD_REQUEST", "m")).toBeInstanceOf(UserError);
    expect(errorFromCode(undefined, "m")).not.toBeInstanceOf(AgentCronError);
    expect(errorFromCode("NOT_A_CODE", "m")).not.toBeInstanceOf(AgentCronError);
  });
});
