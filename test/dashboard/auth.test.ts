import { describe, expect, it } from "vitest";
import { DashboardAuth } from "../../src/dashboard/auth.js";
import { GuessThrottle } from "../../src/http/throttle.js";

const elapsed = async (p: Promise<unknown>) => {
  const t0 = Date.now();
  await p;
  return Date.now() - t0;
};

describe("the guess throttle", () => {
  it("answers a client's wrong guesses after delays that grow and queue, and never slows another client", async () => {
    const throttle = new GuessThrottle({ free: 2, baseMs: 200, maxMs: 5000, forgetMs: 60_000, maxQueueMs: 3000 });
    expect(await elapsed(throttle.failed("a"))).toBeLessThan(150);
    expect(await elapsed(throttle.failed("a"))).toBeLessThan(150);
    expect(await elapsed(throttle.failed("a"))).toBeGreaterThanOrEqual(195);
    expect(await elapsed(throttle.failed("a"))).toBeGreaterThanOrEqual(395);
    // Parallel guesses wait in line: the second one waits for the first one's turn too.
    const [first, second] = await Promise.all([elapsed(throttle.failed("a")), elapsed(throttle.failed("a"))]);
    expect(first).toBeGreaterThanOrEqual(795);
    expect(second).toBeGreaterThanOrEqual(795 + 1595);
    // Another client starts with its free guesses.
    expect(await elapsed(throttle.failed("b"))).toBeLessThan(150);
    // Past the queue limit the client's connection is dropped rather than held.
    expect(await throttle.failed("a")).toBe(false);
  });
});

describe("the approver's sign-in", () => {
  it("takes only the approver secret, never the daemon's token, and its CSRF field differs from the page's", () => {
    const auth = new DashboardAuth("mcp-token", 8766, "approver-secret");
    expect(auth.approverConfigured).toBe(true);
    expect(auth.approverMatches("approver-secret")).toBe(true);
    expect(auth.approverMatches("mcp-token")).toBe(false);
    expect(auth.approverCsrfValid(auth.csrfToken())).toBe(false);
    expect(auth.approverCsrfValid(auth.approverCsrf())).toBe(true);
    // The same secret as the token is no approver secret at all.
    expect(new DashboardAuth("same", 8766, "same").approverConfigured).toBe(false);
    expect(new DashboardAuth("mcp-token", 8766, undefined).approverConfigured).toBe(false);
  });
});
