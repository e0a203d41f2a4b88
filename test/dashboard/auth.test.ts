import { describe, expect, it } from "vitest";
import { DashboardAuth } from "../../src/dashboard/auth.js";

describe("the dashboard's login throttle", () => {
  it("counts wrong tokens per client: one client guessing is refused, another still gets to try", () => {
    const auth = new DashboardAuth("s3cret-token", 8766);
    for (let i = 0; i < 20; i++) {
      expect(auth.tokenMatches(`guess-${i}`)).toBe(false);
      auth.noteFailure("203.0.113.7");
    }
    expect(auth.throttled("203.0.113.7")).toBe(true);
    expect(auth.throttled("127.0.0.1")).toBe(false);
    expect(auth.tokenMatches("s3cret-token")).toBe(true);
  });
});
