import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it, type ExpectStatic } from "vitest";
import { TestServer, groupAlive, pidsWorkingIn, removeDir, runsOnDisk, waitFor, type Structured } from "../helpers/server.js";

const YEARLY = "0 0 1 1 *";

async function startRun(s: TestServer, executor: string, prompt: string): Promise<{ job: Structured; run: Structured; workDir: string }> {
  const job = await s.addJob({ name: `${executor}-job`, schedule: YEARLY, prompt, executor, retries: 3 });
  const { run } = await s.tool("run_now", { job: job.id });
  const workDir: string = run.work_dir;
  await waitFor(() => pidsWorkingIn(workDir).length > 0, { what: "the agent to start" });
  return { job, run, workDir };
}

function expectInterrupted(expect: ExpectStatic, s: TestServer, jobId: string, runId: string) {
  const runs = runsOnDisk(s.dataDir, jobId);
  expect(runs.map((r) => [r.id, r.status])).toEqual([[runId, "interrupted"]]);
  expect(runs[0].finished_at).toEqual(expect.any(String));
  expect(runs[0].error).toMatch(/server stopped/);
}

describe.concurrent("when the client closes the server's stdin", () => {
  it("the server exits within about a second, records the run in flight interrupted and leaves no agent behind", async ({ expect, onTestFinished }) => {
    const s = await TestServer.start();
    onTestFinished(() => s.cleanup());
    const { job, run, workDir } = await startRun(s, "sleep", "20000");
    const agents = pidsWorkingIn(workDir);
    const ms = await s.endStdin();
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(2500);
    expectInterrupted(expect, s, job.id, run.id);
    await waitFor(() => pidsWorkingIn(workDir).length === 0, { timeout: 1000, what: `agents ${agents} to be gone` });
    expect(existsSync(path.join(s.dataDir, "owner.json"))).toBe(false);
  });

  it("it does not wait out kill_grace_seconds for an agent that ignores SIGTERM: the whole process group is killed", async ({ expect, onTestFinished }) => {
    // The default grace (5 s) between SIGTERM and SIGKILL must not delay the exit.
    const s = await TestServer.start({ config: { kill_grace_seconds: 5 } });
    onTestFinished(() => s.cleanup());
    const { job, run, workDir } = await startRun(s, "hang", "x");
    const pidFile = path.join(workDir, "hang.pid");
    const grandchild = await waitFor(() => existsSync(pidFile) && Number(readFileSync(pidFile, "utf8")), { what: "the hang agent's pid file" });
    const pgid = Number(readFileSync(`/proc/${grandchild}/stat`, "utf8").split(") ")[1].split(" ")[2]);
    const ms = await s.endStdin();
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(2500);
    expectInterrupted(expect, s, job.id, run.id);
    await waitFor(() => !groupAlive(pgid), { timeout: 1000, what: `process group ${pgid} to be gone` });
  });

  it("an idle server exits within about a second too", async ({ expect, onTestFinished }) => {
    const s = await TestServer.start();
    onTestFinished(() => removeDir(s.dataDir));
    await s.addJob({ name: "idle", schedule: YEARLY, prompt: "x" });
    const ms = await s.endStdin();
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(2500);
  });
});
