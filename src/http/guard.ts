import { createHash, timingSafeEqual } from "node:crypto";
import net from "node:net";
import os from "node:os";

const loopback = new net.BlockList();
loopback.addSubnet("127.0.0.0", 8, "ipv4");
loopback.addAddress("::1", "ipv6");

const unbracket = (host: string) => host.replace(/^\[(.*)\]$/, "$1");

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`: addresses only this machine reaches. */
export function isLoopback(host: string): boolean {
  const h = unbracket(host.trim().toLowerCase());
  if (h === "localhost") return true;
  const family = net.isIP(h);
  return family !== 0 && loopback.check(h, family === 4 ? "ipv4" : "ipv6");
}

/** A host as it appears in a URL or a Host header: IPv6 literals in brackets. */
export function urlHost(host: string): string {
  return net.isIPv6(unbracket(host)) ? `[${unbracket(host)}]` : host;
}

/** `name`, `name:port`, `[v6]`, `[v6]:port`, or a bare IPv6 literal, lower-cased. */
function splitHost(value: string): { name: string; port?: string } | null {
  const v = value.trim().toLowerCase();
  if (net.isIPv6(v)) return { name: `[${v}]` };
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]\s/]+)(?::(\d{1,5}))?$/.exec(v);
  return m ? { name: m[1], port: m[2] } : null;
}

/** The names a client may use for this server when `allowed_hosts` is not configured. */
export function defaultAllowedHosts(boundHost: string, boundAddress: string): string[] {
  const names = ["localhost", "127.0.0.1", "[::1]", urlHost(boundHost), urlHost(boundAddress)];
  // A wildcard bind is reached by this machine's own names and addresses; a DNS-rebinding
  // page can only present its own name, so these stay safe to accept.
  if (unbracket(boundAddress) === "0.0.0.0" || unbracket(boundAddress) === "::") {
    names.push(os.hostname());
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) names.push(urlHost(a.address));
  }
  return [...new Set(names.map((n) => n.toLowerCase()))];
}

/**
 * The checks every request passes before it reaches MCP: Host and Origin against the allowed
 * names (DNS-rebinding defence) and the bearer token.
 */
export class RequestGuard {
  private readonly rules: { name: string; port?: string }[];
  private readonly tokenDigest: Buffer | null;

  constructor(
    allowedHosts: string[],
    private readonly port: number,
    token: string | undefined,
  ) {
    this.rules = allowedHosts.map(splitHost).filter((r) => r !== null);
    this.tokenDigest = token ? digest(token) : null;
  }

  get requiresToken(): boolean {
    return this.tokenDigest !== null;
  }

  /** A rule without a port accepts the name alone or with this server's port. */
  hostAllowed(header: string | undefined): boolean {
    const h = header === undefined ? null : splitHost(header);
    if (!h) return false;
    const port = h.port ?? String(this.port);
    return this.rules.some((r) => r.name === h.name && (r.port ?? String(this.port)) === port);
  }

  /** Browser pages on any port of an allowed name may call (an inspector on localhost:6274). */
  originAllowed(origin: string): boolean {
    let hostname: string;
    try {
      hostname = new URL(origin).hostname.toLowerCase();
    } catch {
      return false;
    }
    return this.rules.some((r) => r.name === hostname);
  }

  /** Compares digests so that neither the token's content nor its length leaks through timing. */
  authorized(header: string | undefined): boolean {
    if (!this.tokenDigest) return true;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    return m !== null && timingSafeEqual(digest(m[1]), this.tokenDigest);
  }
}

const digest = (text: string) => createHash("sha256").update(text).digest();
