/** A stdio message too large for one read is answered with an error; the server keeps serving. */
import { spawn } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, TestServer, makeDataDir, removeDir, waitFor } from "../helpers/server.js";

describe("stdio framing", () => {
  const dir = makeDataDir();
  afterAll(() => removeDir(dir));

  // Sent at once, the huge message is read by the bin's early reader, before the server exists,
  // and replayed to it: a path that once ended the server (its answer was sent through a
  // transport not made yet).
  it.each([
    ["after the server answered initialize", true],
    ["at once with initialize, before the server has loaded", false],
  ])("answers a message over the limit with an error naming the limit, and serves the next one (sent %s)", async (_when, waitForInitialize) => {
    const child = spawn(process.execPath, [CLI, "serve", "--data-dir", dir], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const answers = () =>
      out
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    const send = (m: unknown) => child.stdin.write(JSON.stringify(m) + "\n");
    send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
    });
    if (waitForInitialize) await waitFor(() => answers().some((a) => a.id === 1), { what: "initialize" });
    send({ jsonrpc: "2.0", method: "notifications/initialized" });
    // 11 MiB in one line, written in pieces as a pipe delivers it.
    const huge = JSON.stringify({
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: { name: "add_cron", arguments: { schedule: "@daily", prompt: "x".repeat(11 * 1024 * 1024) } },
    });
    for (let i = 0; i < huge.length; i += 1 << 20) child.stdin.write(huge.slice(i, i + (1 << 20)));
    child.stdin.write("\n");
    send({ jsonrpc: "2.0", id: 8, method: "tools/list" });
    await waitFor(() => answers().some((a) => a.id === 8), { what: "tools/list after the huge message", timeout: 20_000, describe: () => err });
    const tooLarge = answers().find((a) => a.id === 7);
    expect(tooLarge.error.code).toBe(-32600);
    expect(tooLarge.error.message).toMatch(/^Message too large: \d+ bytes; one message may have at most 8388608 bytes/);
    expect(answers().find((a) => a.id === 8).result.tools.length).toBe(13);
    expect(child.exitCode).toBeNull();
    child.stdin.end();
    await new Promise((r) => child.once("exit", r));
  });

  it("answers an SDK client's oversized request (its id comes last) with a JSON-RPC error, and keeps serving it", async () => {
    const s = await TestServer.start({});
    try {
      const call = s.client.callTool({ name: "add_cron", arguments: { schedule: "@daily", prompt: "x".repeat(9 * 1024 * 1024) } }, undefined, {
        timeout: 20_000,
      });
      await expect(call).rejects.toThrow(/Message too large: \d+ bytes; one message may have at most 8388608 bytes/);
      expect((await s.tool("list_crons")).total).toBe(0);
    } finally {
      await s.cleanup();
    }
  });

  it("refuses an output_schema nested too deep with its depth and the limit, and keeps serving", async () => {
    const s = await TestServer.start({});
    try {
      let deep: Record<string, unknown> = { type: "string" };
      for (let i = 0; i < 1500; i++) deep = { type: "object", properties: { a: deep } };
      expect(await s.toolError("add_cron", { schedule: "@daily", prompt: "p", output_format: "structured", output_schema: deep })).toBe(
        "add_cron failed: output_schema is nested 3001 levels deep; the limit is 64. Describe deep or recursive shapes with $defs and $ref.",
      );
      expect((await s.tool("list_crons")).total).toBe(0);
    } finally {
      await s.cleanup();
    }
  });
});
