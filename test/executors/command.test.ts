import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { CommandExecutorConfig } from "../../src/config.js";
import { CommandExecutor, extractOutput, resolveProgram } from "../../src/executors/command.js";
import type { ExecutionRequest } from "../../src/core/ports.js";
import { fixture } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-command-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const serverEnv = {
  PATH: process.env.PATH,
  HOME: "/home/test",
  SECRET_TOKEN: "do-not-leak",
  ANTHROPIC_API_KEY: "sk-ant",
  CLAUDECODE: "1",
  CLAUDE_CODE_ENTRYPOINT: "cli",
  ALLOWED_ONE: "passes",
};

function executor(command: string[], over: Partial<CommandExecutorConfig> = {}, envAllow: string[] = []) {
  return new CommandExecutor(
    "script",
    { type: "command", command, output: "text", env: {}, ...over },
    {
      serverEnv,
      envAllow,
      killGraceMs: 200,
    },
  );
}

function request(over: Partial<ExecutionRequest> = {}): ExecutionRequest {
  return {
    runId: "run-123",
    jobId: "job-456",
    sessionId: "sess-789",
    resume: false,
    scheduledFor: "2026-12-01T09:00:00.000+01:00",
    prompt: "hello agent",
    workDir: tmp,
    timeoutMs: 10_000,
    outputFormat: "text",
    outputSchema: null,
    maxCostUsd: null,
    signal: new AbortController().signal,
    scratchDir: tmp,
    maxOutputBytes: 1024 * 1024,
    ...over,
  };
}

describe("CommandExecutor", () => {
  it("replaces placeholders inside argv elements and keeps the prompt literal", async () => {
    const ex = executor([fixture("echo-agent.mjs"), "run={run_id} job={job_id} session={session_id} dir={work_dir}", "<{prompt}>"]);
    const r = await ex.execute(request({ prompt: "use {work_dir} and $& as text" }));
    expect(r.status).toBe("completed");
    expect(r.output).toBe(`run=run-123 job=job-456 session=sess-789 dir=${tmp} <use {work_dir} and $& as text>`);
    expect(ex.program).toBe(fixture("echo-agent.mjs"));
  });

  it("writes the prompt to stdin when no argv element has {prompt}", async () => {
    const r = await executor([fixture("echo-agent.mjs")]).execute(request({ prompt: "line one\nline two" }));
    expect(r).toMatchObject({ status: "completed", exitCode: 0, error: null, output: "line one\nline two" });
  });

  it("gives the child exactly the allow-listed environment", async () => {
    const ex = executor([fixture("echo-agent.mjs")], { env: { EXTRA: "from-config" } }, ["ALLOWED_ONE", "CLAUDECODE"]);
    const r = await ex.execute(request({ prompt: "ENV" }));
    const env = JSON.parse(r.output);
    expect(env).toEqual({
      PATH: process.env.PATH,
      HOME: "/home/test",
      ALLOWED_ONE: "passes",
      EXTRA: "from-config",
      AGENT_CRON_RUN_ID: "run-123",
      AGENT_CRON_JOB_ID: "job-456",
      AGENT_CRON_SESSION_ID: "sess-789",
      AGENT_CRON_SCHEDULED_FOR: "2026-12-01T09:00:00.000+01:00",
    });
  });

  it("survives a large prompt on stdin to a child that never reads it", async () => {
    const r = await executor([process.execPath, fixture("no-stdin-agent.mjs")]).execute(request({ prompt: "p".repeat(4 * 1024 * 1024) }));
    expect(r).toMatchObject({ status: "completed", output: "bye" });
  });

  it("fails on a non-zero exit with the code and the tail of stderr", async () => {
    const r = await executor([fixture("fail-agent.mjs"), "3"]).execute(request());
    expect(r.status).toBe("failed");
    expect(r.exitCode).toBe(3);
    expect(r.error).toMatch(/exited with code 3: …/);
    expect(r.error).toMatch(/fatal: the agent broke$/);
    expect(r.error!.length).toBeLessThan(700);
    expect(r.raw).toContain("--- stderr ---");
  });

  it("names the missing binary and the config key to set", async () => {
    const r = await executor(["agent-cron-no-such-agent", "{prompt}"]).execute(request());
    expect(r.status).toBe("failed");
    expect(r.exitCode).toBeNull();
    expect(r.error).toContain('"agent-cron-no-such-agent"');
    expect(r.error).toContain("executors.script.command");
  });

  it("times out and says the process group was killed", async () => {
    const r = await executor([fixture("sleep-agent.mjs"), "10000"]).execute(request({ timeoutMs: 300 }));
    expect(r.status).toBe("timed_out");
    expect(r.error).toBe("Timed out after 0.3s; the process group was killed.");
  });

  it("is canceled through the request's signal", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const started = Date.now();
    const r = await executor([fixture("sleep-agent.mjs"), "10000"]).execute(request({ signal: ac.signal }));
    expect(r.status).toBe("canceled");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("flags output cut at max_output_bytes", async () => {
    const r = await executor([fixture("big-agent.mjs"), "50000"]).execute(request({ maxOutputBytes: 2000 }));
    expect(r).toMatchObject({ status: "completed", outputTruncated: true });
    expect(Buffer.byteLength(r.output)).toBeLessThanOrEqual(2000);
    expect(r.output).not.toContain("\uFFFD");
  });

  it("reads a JSON field with output json:<path>", async () => {
    const run = (output: string, mode = "object") => executor([fixture("json-agent.mjs"), mode], { output }).execute(request());
    expect(await run("json:response")).toMatchObject({ status: "completed", output: "hello from json" });
    expect(await run("json:meta.tags")).toMatchObject({ output: '["a","b"]' });
    expect(await run("json:meta.tags.1")).toMatchObject({ output: "b" });
    const missing = await run("json:meta.nope");
    expect(missing).toMatchObject({ status: "failed", exitCode: 0 });
    expect(missing.error).toContain('no field "meta.nope"');
    const invalid = await run("json:response", "invalid");
    expect(invalid.status).toBe("failed");
    expect(invalid.error).toContain("not valid JSON");
  });

  it("reads the last matching JSONL event with output jsonl-last:<filter>@<path>", async () => {
    const run = (output: string) => executor([fixture("json-agent.mjs"), "jsonl"], { output }).execute(request());
    expect(await run("jsonl-last:type=text@part.text")).toMatchObject({ status: "completed", output: "second" });
    expect(await run("jsonl-last:type=end")).toMatchObject({ output: '{"type":"end","ok":true}' });
    expect(await run("jsonl-last:type=end,ok=true@type")).toMatchObject({ output: "end" });
    expect(await run("jsonl-last:part@part.text")).toMatchObject({ output: "second" });
    expect(await run("jsonl-last")).toMatchObject({ output: '{"type":"end","ok":true}' });
    const none = await run("jsonl-last:type=message");
    expect(none.status).toBe("failed");
    expect(none.error).toContain('no JSONL line on stdout matches "type=message"');
  });

  it("retried runs see fresh state: the flaky agent fails, then succeeds", async () => {
    const ex = executor([fixture("flaky-agent.mjs"), path.join(tmp, "flaky.count"), "1"]);
    expect((await ex.execute(request())).error).toContain("flaky failure 1");
    expect(await ex.execute(request())).toMatchObject({ status: "completed", output: "ok after 1 failures" });
  });
});

describe("extractOutput", () => {
  it("text drops exactly one trailing newline", () => {
    expect(extractOutput("a\n\n", "text")).toEqual({ output: "a\n" });
    expect(extractOutput("a\r\n", "text")).toEqual({ output: "a" });
  });

  it("json alone only checks that stdout parses", () => {
    expect(extractOutput(' {"a":1}\n', "json")).toEqual({ output: '{"a":1}' });
    expect(extractOutput("nope", "json")).toHaveProperty("error");
  });
});

describe("resolveProgram", () => {
  it("finds a bare name on PATH and refuses what is missing or not executable", () => {
    const dir = mkdtempSync(path.join(tmp, "bin-"));
    writeFileSync(path.join(dir, "tool"), "#!/bin/sh\n");
    writeFileSync(path.join(dir, "plain"), "data");
    chmodSync(path.join(dir, "tool"), 0o755);
    expect(resolveProgram("tool", `/nonexistent${path.delimiter}${dir}`)).toBe(path.join(dir, "tool"));
    expect(resolveProgram("plain", dir)).toBeNull();
    expect(resolveProgram("missing", dir)).toBeNull();
    expect(resolveProgram(path.join(dir, "tool"), "")).toBe(path.join(dir, "tool"));
    expect(resolveProgram("./tool", "", dir)).toBe(path.join(dir, "tool"));
    expect(resolveProgram(path.basename(process.execPath), path.dirname(process.execPath))).toBe(process.execPath);
  });
});
