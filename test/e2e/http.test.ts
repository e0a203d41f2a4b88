import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { HttpServer, INITIALIZE, RawStream, jsonRpc, rawRequest, rawSession } from "../helpers/http.js";
import { CLI, makeDataDir, removeDir, sleep, waitFor } from "../helpers/server.js";
import { readDataFiles } from "../reliability/helpers.js";

const TOKEN = "s3cret-token-for-tests";
const servers: HttpServer[] = [];
const start = async (opts: Parameters<typeof HttpServer.start>[0] = {}) => {
  const server = await HttpServer.start(opts);
  servers.push(server);
  return server;
};

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.cleanup()));
});

describe("agent-cron serve --http", () => {
  it("prints the ready line with the real port and serves tools and resources to an SDK client", async () => {
    const server = await start();
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    expect(server.port).toBeGreaterThan(0);
    expect(server.stderr()).toMatch(/AGENT_CRON_TOKEN is not set.*open to every local process/);

    const a = await server.connect();
    expect(a.client.getServerVersion()?.name).toBe("agent-cron");
    expect(a.client.getInstructions()).toContain("preview_schedule");
    const tools = (await a.client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(expect.arrayContaining(["add_cron", "list_crons", "run_now", "preview_schedule", "get_cron"]));

    const { job } = await a.tool("add_cron", { name: "nightly", schedule: "0 3 * * *", prompt: "tidy up" });
    expect((await a.tool("list_crons")).jobs.map((j: any) => j.name)).toEqual(["nightly"]);
    expect((await a.read("cron://jobs")).jobs.map((j: any) => j.id)).toContain(job.id);
    expect((await a.read(`cron://jobs/${job.id}`)).job.id).toBe(job.id);

    // A second session sees the same data.
    const b = await server.connect();
    expect((await b.tool("get_cron", { job: "nightly" })).job.id).toBe(job.id);
  });

  it("sends a run's updates to every session subscribed to its job", async () => {
    const server = await start();
    const [a, b, c] = [await server.connect(), await server.connect(), await server.connect()];
    const { job } = await a.tool("add_cron", { name: "fanout", schedule: "0 3 * * *", prompt: "hello" });
    const uri = `cron://jobs/${job.id}`;
    await a.client.subscribeResource({ uri });
    await b.client.subscribeResource({ uri });

    const { run } = await a.tool("run_now", { job: "fanout", wait: true });
    expect(run.status).toBe("completed");
    await waitFor(() => a.updatesFor(uri).length > 0 && b.updatesFor(uri).length > 0, { what: "both sessions to get the update" });
    await waitFor(() => b.notifications.some((n) => n.method === "notifications/message" && n.params.data?.run_id === run.id), { what: "a log message" });
    // A session that did not subscribe gets no resource update, only the broadcast kinds.
    expect(c.updatesFor(uri)).toEqual([]);
  });

  it("ends a session on DELETE; its id then gets 404", async () => {
    const server = await start();
    const a = await server.connect();
    const id = a.sessionId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await a.transport.terminateSession();
    const res = await rawRequest(server.url, { body: jsonRpc(9, "tools/list"), headers: { "mcp-session-id": id, "mcp-protocol-version": "2025-11-25" } });
    expect(res.status).toBe(404);
    expect(res.json().error.code).toBe(-32001);
  });

  it("replays notifications missed while the GET stream was down (Last-Event-ID)", async () => {
    const server = await start();
    const s = await rawSession(server.url);
    const added = await s.call("tools/call", { name: "add_cron", arguments: { name: "replayed", schedule: "0 3 * * *", prompt: "x" } });
    const jobId = added.result.structuredContent.job.id;
    const uri = `cron://jobs/${jobId}`;
    await s.call("resources/subscribe", { uri });

    const first = await RawStream.open(server.url, s.headers);
    expect(first.status).toBe(200);
    await s.call("tools/call", { name: "pause", arguments: { job: jobId } });
    const seen = await waitFor(() => first.messages().find((m) => m.message.params?.uri === uri), { what: "the first update" });
    expect(seen.id).toBeTruthy();
    first.close();

    // Missed while disconnected: two more updates of the job.
    await sleep(200);
    await s.call("tools/call", { name: "resume", arguments: { job: jobId } });
    await s.call("tools/call", { name: "update_cron", arguments: { job: jobId, prompt: "y" } });

    const again = await waitFor(
      async () => {
        const stream = await RawStream.open(server.url, { ...s.headers, "last-event-id": seen.id! });
        if (stream.status === 409) return null; // the server has not noticed the disconnect yet
        return stream;
      },
      { what: "the resumed stream" },
    );
    expect(again.status).toBe(200);
    const replayed = await waitFor(
      () => {
        const updates = again.messages().filter((m) => m.message.method === "notifications/resources/updated" && m.message.params.uri === uri);
        return updates.length >= 2 && updates;
      },
      { what: "the missed updates" },
    );
    expect(replayed.map((m) => m.id)).not.toContain(seen.id);
    // Still live after the replay.
    await s.call("tools/call", { name: "pause", arguments: { job: jobId } });
    await waitFor(() => again.messages().filter((m) => m.message.params?.uri === uri).length >= 3, { what: "a live update after the replay" });
    again.close();
  });

  it("requires the bearer token when AGENT_CRON_TOKEN is set (401 with WWW-Authenticate)", async () => {
    const server = await start({ env: { AGENT_CRON_TOKEN: TOKEN } });
    expect(server.stderr()).not.toContain("open to every local process");

    const missing = await rawRequest(server.url, { body: INITIALIZE });
    expect(missing.status).toBe(401);
    expect(missing.headers["www-authenticate"]).toMatch(/^Bearer\b/);
    const wrong = await rawRequest(server.url, { body: INITIALIZE, headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers["www-authenticate"]).toMatch(/^Bearer\b/);
    const longer = await rawRequest(server.url, { body: INITIALIZE, headers: { authorization: `Bearer ${TOKEN}x` } });
    expect(longer.status).toBe(401);

    // The body and the challenge say what to send, and where the token comes from.
    expect(missing.json().error.message).toMatch(/send the header "Authorization: Bearer <token>" with the token from AGENT_CRON_TOKEN/);
    expect(missing.headers["www-authenticate"]).toMatch(
      /error_description="no token: send the header 'Authorization: Bearer <token>' with the token from AGENT_CRON_TOKEN"/,
    );
    expect(wrong.headers["www-authenticate"]).toMatch(/error="invalid_token"/);
    expect(JSON.stringify(missing.json()) + missing.headers["www-authenticate"]).not.toContain(TOKEN);

    // A client that falls back to OAuth (Claude Code: .well-known discovery, then Dynamic
    // Client Registration at /register, whose answer it shows) is told to use the header.
    const base = server.url.replace(/\/mcp$/, "");
    for (const p of [
      "/.well-known/oauth-protected-resource",
      "/.well-known/oauth-protected-resource/mcp",
      "/.well-known/oauth-authorization-server",
      "/.well-known/openid-configuration",
    ]) {
      const r = await rawRequest(base + p, { method: "GET" });
      expect(r.status, p).toBe(404);
      expect(r.json().error_description, p).toMatch(/agent-cron does not use OAuth; send the header "Authorization: Bearer <token>"/);
    }
    const register = await rawRequest(base + "/register", { body: JSON.stringify({ redirect_uris: ["http://localhost/cb"] }) });
    expect(register.status).toBe(401);
    expect(register.json()).toMatchObject({ error: "invalid_client" });
    expect(register.json().error_description).toMatch(/--header "Authorization: Bearer \$AGENT_CRON_TOKEN"/);

    await expect(server.connect()).rejects.toThrow();
    const ok = await server.connect({ token: TOKEN });
    expect((await ok.tool("preview_schedule", { schedule: "@every 15m" })).valid).toBe(true);
  });

  it("answers 403 to a foreign Host or Origin (DNS rebinding)", async () => {
    const server = await start();
    const port = server.port;
    for (const host of ["evil.example", `evil.example:${port}`, `127.0.0.1:${port + 1}`]) {
      expect((await rawRequest(server.url, { body: INITIALIZE, headers: { host } })).status, host).toBe(403);
    }
    for (const host of ["localhost", `localhost:${port}`, `127.0.0.1:${port}`, "127.0.0.1", `[::1]:${port}`]) {
      expect((await rawRequest(server.url, { body: INITIALIZE, headers: { host } })).status, host).toBe(200);
    }
    expect((await rawRequest(server.url, { body: INITIALIZE, headers: { origin: "http://evil.example" } })).status).toBe(403);
    expect((await rawRequest(server.url, { body: INITIALIZE, headers: { origin: "null" } })).status).toBe(403);
    expect((await rawRequest(server.url, { body: INITIALIZE, headers: { origin: "http://localhost:6274" } })).status).toBe(200);
  });

  it("accepts the names listed in http.allowed_hosts instead of the defaults", async () => {
    const server = await start({ config: { http: { allowed_hosts: ["agent-cron.test"] } } });
    expect((await rawRequest(server.url, { body: INITIALIZE, headers: { host: "agent-cron.test" } })).status).toBe(200);
    expect((await rawRequest(server.url, { body: INITIALIZE, headers: { host: `127.0.0.1:${server.port}` } })).status).toBe(403);
  });

  it("refuses a non-loopback bind without a token: exit 2 naming AGENT_CRON_TOKEN", async () => {
    const dataDir = makeDataDir();
    try {
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, "serve", "--http", "--host", "0.0.0.0", "--port", "0", "--data-dir", dataDir], {
          env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
          stdio: ["ignore", "ignore", "pipe"],
        });
        let stderr = "";
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
        child.on("exit", (code) => resolve({ code, stderr }));
      });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain("AGENT_CRON_TOKEN");
      expect(result.stderr).not.toContain("agent-cron ready");
    } finally {
      await removeDir(dataDir);
    }
  });

  it("binds a non-loopback address when a token is set", async () => {
    const server = await start({ args: ["--host", "0.0.0.0"], env: { AGENT_CRON_TOKEN: TOKEN } });
    expect(server.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/mcp$/);
    const local = `http://127.0.0.1:${server.port}/mcp`;
    expect((await rawRequest(local, { body: INITIALIZE })).status).toBe(401);
    expect((await rawRequest(local, { body: INITIALIZE, headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  it("answers 413 to a body over http.max_body_bytes, -32700 to malformed JSON, 404 off /mcp", async () => {
    const server = await start({ config: { http: { max_body_bytes: 64 * 1024 } } });
    const huge = await rawRequest(server.url, { body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: { pad: "x".repeat(100_000) } }) });
    expect(huge.status).toBe(413);
    const bad = await rawRequest(server.url, { body: '{"jsonrpc": "2.0", "id": 1, "method": ' });
    expect(bad.status).toBe(400);
    expect(bad.json().error.code).toBe(-32700);
    expect((await rawRequest(server.url, { path: "/other", method: "GET" })).status).toBe(404);
    expect((await rawRequest(server.url, { method: "PUT", body: "{}" })).status).toBe(405);
    // Still serving.
    const a = await server.connect();
    expect((await a.tool("list_crons")).jobs).toEqual([]);
  });

  it("closes a session left idle beyond http.session_idle_seconds", async () => {
    const server = await start({ config: { http: { session_idle_seconds: 1 } } });
    const s = await rawSession(server.url);
    expect(await s.call("tools/list")).toHaveProperty("result");
    // An SDK client holds its GET stream open: connected, so never idle.
    const listening = await server.connect();
    // Polling would keep the session alive; one generous wait instead (idle 1 s, checked every 0.5 s).
    await sleep(3000);
    expect((await rawRequest(server.url, { body: jsonRpc(99, "tools/list"), headers: s.headers })).status).toBe(404);
    expect((await listening.tool("list_crons")).jobs).toEqual([]);
  });

  it("on SIGTERM mid-run exits 0 within the grace period and records the run interrupted", async () => {
    const server = await start({ config: { shutdown_grace_seconds: 1 } });
    const a = await server.connect();
    const { job } = await a.tool("add_cron", { name: "long", schedule: "0 3 * * *", prompt: "30000", executor: "sleep" });
    const { run } = await a.tool("run_now", { job: "long" });
    expect(run.status).toBe("running");

    const stoppedAt = Date.now();
    const code = await server.stop("SIGTERM", 15_000);
    expect(code).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(1000 + 5000);

    const runs = readDataFiles(server.dataDir).runs.get(job.id)!;
    expect(runs.find((r) => r.id === run.id)!.status).toBe("interrupted");

    // Nothing lost across a restart on the same data dir.
    const again = await start({ dataDir: server.dataDir });
    const b = await again.connect();
    const after = (await b.tool("list_runs", { job: "long" })).runs;
    expect(after.map((r: any) => [r.id, r.status])).toEqual([[run.id, "interrupted"]]);
  });
});
