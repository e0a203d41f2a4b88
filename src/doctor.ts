import os from "node:os";
import type { Config, ExecutorConfig } from "./config.js";
import { resolveProgram } from "./executors/cli-agent.js";
import { AUTH_VARS, buildChildEnv } from "./executors/env.js";
import { runProcess } from "./executors/process.js";
import { bwrapWorksHere, sandboxMode, type SandboxCheck } from "./executors/sandbox.js";

export interface DoctorRow {
  /** The executor's name; "(sandbox)" for the bubblewrap row. */
  executor: string;
  type: ExecutorConfig["type"] | "sandbox";
  /** The program an executor starts (as resolved on PATH when found); null for endpoints. */
  program: string | null;
  /** The URL an `openai` executor calls; null for programs. */
  endpoint: string | null;
  status: "ok" | "missing" | "unreachable" | "error";
  version: string | null;
  detail: string;
}

const VERSION_TIMEOUT_MS = 5_000;
const ENDPOINT_TIMEOUT_MS = 3_000;

/**
 * Checks every configured executor at once: its program is there and answers, or its endpoint
 * answers; an executor with `"sandbox": "bwrap"` is ok only when bubblewrap can start here, and
 * one left on "auto" says whether its runs are sandboxed.
 * With `sandbox: true` a last row, executor "(sandbox)" and type "sandbox", says whether
 * bubblewrap works here, whether or not an executor uses it (see sandboxDoctorRow).
 */
export async function doctor(config: Pick<Config, "executors" | "env_allow">, env: NodeJS.ProcessEnv, opts: { sandbox?: boolean } = {}): Promise<DoctorRow[]> {
  let check: Promise<SandboxCheck> | undefined;
  const sandbox = () => (check ??= bwrapWorksHere("bwrap", env));
  const rows = await Promise.all(
    Object.entries(config.executors).map(async ([name, cfg]) => {
      const row = await checkExecutor(name, cfg, config.env_allow, env);
      const mode = sandboxMode(cfg);
      return mode === "none" ? row : withSandbox(row, name, mode, await sandbox());
    }),
  );
  return opts.sandbox ? [...rows, sandboxRow(await sandbox())] : rows;
}

/** The "(sandbox)" row alone: whether bubblewrap can start a sandbox here. */
export async function sandboxDoctorRow(env: NodeJS.ProcessEnv): Promise<DoctorRow> {
  return sandboxRow(await bwrapWorksHere("bwrap", env));
}

function sandboxRow(check: SandboxCheck): DoctorRow {
  return { executor: "(sandbox)", type: "sandbox", program: check.program, endpoint: null, status: check.status, version: check.version, detail: check.detail };
}

/**
 * A sandboxed executor whose program is fine still cannot run when bubblewrap cannot ("bwrap"),
 * or runs unsandboxed, which the row says ("auto").
 */
function withSandbox(row: DoctorRow, name: string, mode: "auto" | "bwrap", check: SandboxCheck): DoctorRow {
  if (row.status !== "ok") return row;
  const key = `executors.${name}.sandbox`;
  if (check.ok) return { ...row, detail: `${row.detail}; sandbox ${mode === "auto" ? "auto: " : ""}bwrap ok${check.version ? ` (${check.version})` : ""}` };
  if (mode === "auto") {
    return {
      ...row,
      detail: `${row.detail}; runs WITHOUT a sandbox (${key} is "auto" and ${check.detail.replace(/\.$/, "")}). Install bubblewrap, or set ${key} to "none" to accept that.`,
    };
  }
  return {
    ...row,
    status: check.status === "missing" ? "missing" : "error",
    detail: `${row.detail}, but its sandbox cannot start: ${check.detail.replace(/\.$/, "")}. Fix that or set ${key} to "none".`,
  };
}

async function checkExecutor(name: string, cfg: ExecutorConfig, envAllow: string[], env: NodeJS.ProcessEnv): Promise<DoctorRow> {
  const row = { executor: name, type: cfg.type, program: null, endpoint: null, version: null };
  if (cfg.type === "openai")
    return { ...row, ...(await checkEndpoint(cfg.base_url, cfg.api_key_env ? (cfg.env[cfg.api_key_env] ?? env[cfg.api_key_env]) : undefined)) };

  const bin = cfg.type === "command" ? cfg.command[0] : cfg.bin;
  const key = cfg.type === "command" ? `executors.${name}.command` : `executors.${name}.bin`;
  // The PATH the executor's children get, which the executor's own env map may change.
  const childEnv = buildChildEnv({
    serverEnv: env,
    envAllow,
    authVars: AUTH_VARS[cfg.type],
    executorEnv: cfg.env,
    runVars: { runId: "doctor", jobId: "doctor", sessionId: "doctor", scheduledFor: "" },
  });
  const resolved = resolveProgram(bin, childEnv.PATH);
  if (!resolved) {
    return { ...row, program: bin, status: "missing", detail: `"${bin}" is not on PATH; install it or set ${key}.` };
  }
  // A command's program may be the agent itself: `--version` could start a real run.
  if (cfg.type === "command") return { ...row, program: resolved, status: "ok", detail: "found; version not checked for command executors" };

  const proc = await runProcess({
    argv: [resolved, "--version"],
    cwd: os.tmpdir(),
    env: childEnv,
    stdin: null,
    timeoutMs: VERSION_TIMEOUT_MS,
    killGraceMs: 500,
    maxOutputBytes: 64 * 1024,
  });
  const version = proc.stdout.trim().split("\n")[0]?.trim().slice(0, 120) || null;
  if (proc.exitCode === 0) return { ...row, program: resolved, status: "ok", version, detail: "found" };
  // One line for the table: the last thing the program said is usually why it stopped.
  const lastLine = proc.stderr.trim().split("\n").at(-1)?.trim().slice(0, 200);
  const why = proc.timedOut
    ? `"${bin} --version" did not answer within ${VERSION_TIMEOUT_MS / 1000} s`
    : (proc.spawnError ?? `"${bin} --version" exited with code ${proc.exitCode ?? proc.signal}${lastLine ? `: ${lastLine}` : ""}`);
  return { ...row, program: resolved, status: "error", version, detail: why };
}

/** Any HTTP answer means the server is there; /models also tells whether the key is accepted. */
async function checkEndpoint(baseUrl: string, apiKey: string | undefined): Promise<Pick<DoctorRow, "endpoint" | "status" | "detail">> {
  const endpoint = `${baseUrl.replace(/\/+$/, "")}/models`;
  try {
    // undici costs ~40 ms to load: only a config with an endpoint pays it, not every start.
    const { request } = await import("./kernel/http-client.js");
    const res = await request(endpoint, {
      method: "GET",
      headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
      signal: AbortSignal.timeout(ENDPOINT_TIMEOUT_MS),
    });
    await res.body.dump();
    const note = res.statusCode === 401 || res.statusCode === 403 ? " (check the API key)" : "";
    return { endpoint, status: "ok", detail: `reachable: HTTP ${res.statusCode}${note}` };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    const why = e.name === "TimeoutError" ? `no answer within ${ENDPOINT_TIMEOUT_MS / 1000} s` : (e.cause?.message ?? e.message);
    return { endpoint, status: "unreachable", detail: why };
  }
}

/** A plain-text table, one executor a line. */
export function formatDoctorTable(rows: DoctorRow[]): string {
  if (rows.length === 0) return "No executors configured.";
  const header = ["EXECUTOR", "TYPE", "PROGRAM / ENDPOINT", "STATUS", "VERSION", "DETAIL"];
  const cells = rows.map((r) => [r.executor, r.type, r.program ?? r.endpoint ?? "", r.status, r.version ?? "-", r.detail].map((c) => c.replace(/\s+/g, " ")));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]))).join("  ");
  return [line(header), ...cells.map(line)].join("\n");
}
