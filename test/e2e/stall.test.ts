/** A stalled owner (SIGSTOP) makes the CLI fail with a sentence, not hang. */
import { afterAll, describe, expect, it } from "vitest";
import { TestServer, runCli } from "../helpers/server.js";

describe("a stalled owner", () => {
  let s: TestServer;
  afterAll(async () => {
    if (s) process.kill(s.pid, "SIGCONT");
    await s?.cleanup();
  });

  it("the CLI gives up with one sentence and exit 1 when the owner does not answer", async () => {
    s = await TestServer.start();
    await s.tool("add_cron", { name: "x", schedule: "@daily", prompt: "p" });
    process.kill(s.pid, "SIGSTOP");
    const t0 = Date.now();
    const r = await runCli(["list", "--data-dir", s.dataDir], { env: { AGENT_CRON_CALL_TIMEOUT_MS: "1500" }, timeout: 20_000 });
    const took = Date.now() - t0;
    process.kill(s.pid, "SIGCONT");
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(
      /^agent-cron: The agent-cron process that owns the data dir did not answer (listCrons )?within 1\.5 s; it may be stalled\. Try again\.$/,
    );
    expect(took).toBeLessThan(6000);
    // Awake again, it answers.
    expect((await s.tool("list_crons")).total).toBe(1);
  });
});
