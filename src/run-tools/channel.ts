import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { RunToolsHandle, RunToolsPort } from "../core/ports.js";
import { errorMessage } from "../kernel/errors.js";

/**
 * The owner's side of a run's tools (SPEC §21): one Unix socket per run, in the run's own
 * scratch dir (a sandboxed run sees that dir and nothing else of the host), that accepts only
 * that run's one-time token and only the tools named for it. `agent-cron run-tools`, started
 * by the agent CLI from the MCP configuration it was given, connects here; nothing else of
 * the server is reachable through it. Closed (and the token forgotten) when the run ends.
 *
 * One request per connection: a line of JSON `{token, tool, args}`, answered by a line
 * `{ok: true, result}` or `{ok: false, error}`.
 */

/** Unix socket paths are limited to 108 bytes on Linux (104 on macOS). */
const MAX_SOCKET_PATH = 100;
/** A request larger than this is refused: no tool takes more than a few KiB. */
const MAX_REQUEST_BYTES = 64 * 1024;

export const RUN_TOOLS_SERVER_NAME = "agent_cron_run";

export function createRunToolsPort(opts: { command: string; args: string[] }): RunToolsPort {
  return {
    async open(run, call) {
      const token = randomBytes(32).toString("base64url");
      const expected = createHash("sha256").update(token).digest();
      // Short, so that it fits in most work dirs; a run that shares its dir (a persistent job
      // under overlap allow) has its own.
      let socketPath = path.join(run.dir, `.ac-${run.runId.slice(0, 8)}.sock`);
      if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) socketPath = path.join(os.tmpdir(), `agent-cron-run-${run.runId}.sock`);
      rmSync(socketPath, { force: true });
      let open = true;
      const allowed = new Set(run.tools);
      const server = net.createServer((conn) => {
        let buf = "";
        conn.setEncoding("utf8");
        const answer = (body: unknown) => conn.end(`${JSON.stringify(body)}\n`);
        conn.on("error", () => {});
        conn.on("data", (chunk: string) => {
          buf += chunk;
          if (Buffer.byteLength(buf) > MAX_REQUEST_BYTES) return answer({ ok: false, error: "The request is too large." });
          const nl = buf.indexOf("\n");
          if (nl < 0) return;
          let req: { token?: unknown; tool?: unknown; args?: unknown };
          try {
            req = JSON.parse(buf.slice(0, nl));
          } catch {
            return answer({ ok: false, error: "The request is not JSON." });
          }
          const given = createHash("sha256")
            .update(typeof req.token === "string" ? req.token : "")
            .digest();
          if (!open || !timingSafeEqual(given, expected))
            return answer({ ok: false, error: "This token is not valid for this run (it has ended, or the token belongs to another run)." });
          if (typeof req.tool !== "string" || !allowed.has(req.tool)) return answer({ ok: false, error: `No tool "${String(req.tool)}" in this run.` });
          const args = req.args && typeof req.args === "object" && !Array.isArray(req.args) ? (req.args as Record<string, unknown>) : {};
          call(req.tool, args).then(
            (result) => answer({ ok: true, result }),
            (err) => answer({ ok: false, error: errorMessage(err) }),
          );
        });
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(socketPath, () => resolve());
      });
      // Only this user may connect (the token is still required).
      chmodSync(socketPath, 0o600);
      const handle: RunToolsHandle = {
        server: {
          name: RUN_TOOLS_SERVER_NAME,
          command: opts.command,
          args: opts.args,
          env: { AGENT_CRON_RUN_TOOLS_SOCKET: socketPath, AGENT_CRON_RUN_TOOLS_TOKEN: token, AGENT_CRON_RUN_TOOLS: run.tools.join(",") },
          sandbox: { programs: [opts.command, ...opts.args.filter((a) => path.isAbsolute(a))], socket: socketPath },
        },
        async close() {
          if (!open) return;
          open = false;
          await new Promise<void>((resolve) => server.close(() => resolve()));
          rmSync(socketPath, { force: true });
        },
      };
      return handle;
    },
  };
}

/** The other end, in `agent-cron run-tools`: one call over the run's socket. */
export function callRunTool(
  socketPath: string,
  token: string,
  tool: string,
  args: Record<string, unknown>,
): Promise<{ ok: true; result: Record<string, unknown> } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const conn = net.connect(socketPath);
    let buf = "";
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(`${JSON.stringify({ token, tool, args })}\n`));
    conn.on("data", (chunk: string) => (buf += chunk));
    conn.on("error", (err) => resolve({ ok: false, error: `This run's tools cannot be reached (${errorMessage(err)}); the run has ended.` }));
    conn.on("end", () => {
      try {
        resolve(JSON.parse(buf));
      } catch {
        resolve({ ok: false, error: "The run's tools gave no answer." });
      }
    });
  });
}
