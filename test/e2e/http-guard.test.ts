// Unit tests of the HTTP request checks (Host, Origin, bearer token), next to the HTTP e2e tests.
import { describe, expect, it } from "vitest";
import { RequestGuard, defaultAllowedHosts, isLoopback, urlHost } from "../../src/http/guard.js";

describe("isLoopback", () => {
  it.each(["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])("%s is loopback", (h) => {
    expect(isLoopback(h)).toBe(true);
  });
  it.each(["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "128.0.0.1", "localhost.evil.com"])("%s is not", (h) => {
    expect(isLoopback(h)).toBe(false);
  });
});

describe("RequestGuard", () => {
  const guard = new RequestGuard(defaultAllowedHosts("127.0.0.1", "127.0.0.1"), 8765, undefined);

  it("accepts the loopback names with or without this server's port", () => {
    for (const h of ["localhost", "localhost:8765", "127.0.0.1", "127.0.0.1:8765", "[::1]", "[::1]:8765", "LocalHost:8765"])
      expect(guard.hostAllowed(h), h).toBe(true);
  });

  it("refuses other names, other ports, and a missing Host", () => {
    for (const h of ["evil.com", "evil.com:8765", "localhost:9999", "127.0.0.2", "localhost.", "", "a b"]) expect(guard.hostAllowed(h), h).toBe(false);
    expect(guard.hostAllowed(undefined)).toBe(false);
  });

  it("checks an Origin by its host name only", () => {
    expect(guard.originAllowed("http://localhost:6274")).toBe(true);
    expect(guard.originAllowed("http://[::1]:3000")).toBe(true);
    expect(guard.originAllowed("https://evil.com")).toBe(false);
    expect(guard.originAllowed("null")).toBe(false);
  });

  it("honours ports in configured names", () => {
    const g = new RequestGuard(["proxy.lan:443", "::1"], 8765, undefined);
    expect(g.hostAllowed("proxy.lan:443")).toBe(true);
    expect(g.hostAllowed("proxy.lan")).toBe(false);
    expect(g.hostAllowed("[::1]:8765")).toBe(true);
  });

  it("compares the bearer token exactly", () => {
    const g = new RequestGuard(["localhost"], 8765, "tok-123");
    expect(g.authorized("Bearer tok-123")).toBe(true);
    expect(g.authorized("bearer tok-123")).toBe(true);
    for (const h of [undefined, "", "Bearer", "Bearer tok-1234", "Bearer tok-12", "Basic tok-123", "tok-123", "Bearer tok-123 extra"]) {
      expect(g.authorized(h), String(h)).toBe(false);
    }
  });

  it("brackets IPv6 literals for URLs", () => {
    expect(urlHost("::1")).toBe("[::1]");
    expect(urlHost("[::1]")).toBe("[::1]");
    expect(urlHost("127.0.0.1")).toBe("127.0.0.1");
  });

  it("adds this machine's addresses for a wildcard bind", () => {
    const hosts = defaultAllowedHosts("0.0.0.0", "0.0.0.0");
    expect(hosts).toContain("127.0.0.1");
    expect(hosts.length).toBeGreaterThan(4);
  });
});
