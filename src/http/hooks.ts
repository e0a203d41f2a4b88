import type { IncomingMessage, ServerResponse } from "node:http";
import type { CronApi } from "../core/api.js";
import { codeOf, errorMessage, kindOf } from "../kernel/errors.js";
import { readBody } from "./body.js";
import { GuessThrottle } from "./throttle.js";

/** An event's body may be at most this large; it is appended to the prompt. */
export const MAX_EVENT_BYTES = 64 * 1024;

/** POST /hooks/{job_id} with "Authorization: Bearer <trigger_token>": 202 {run_id}. */
export async function handleHook(api: CronApi, req: IncomingMessage, res: ServerResponse, jobId: string, guesses: GuessThrottle): Promise<void> {
  const answer = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  if (req.method !== "POST") return answer(405, { error: "Use POST to start a run of this job." }, { allow: "POST" });
  const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1];
  if (!auth) {
    req.resume();
    return answer(
      401,
      { error: 'Send "Authorization: Bearer <trigger_token>", the token add_cron showed for this job.' },
      { "www-authenticate": 'Bearer realm="agent-cron-hooks"' },
    );
  }
  const body = await readBody(req, MAX_EVENT_BYTES);
  if (body === null)
    return answer(413, { error: `The event payload is larger than ${MAX_EVENT_BYTES / 1024} KiB; send less, or a reference to where the rest is.` });
  try {
    const { run } = await api.triggerEvent({ job_id: jobId, token: auth, payload: body });
    return answer(202, run ? { run_id: run.id, status: run.status } : { run_id: null, status: "queued" });
  } catch (err) {
    const code = codeOf(err);
    if (code === "AC_UNAUTHORIZED" && !(await guesses.failed(GuessThrottle.key(req, "hooks")))) return void req.socket.destroy();
    if (code === "AC_UNAUTHORIZED")
      return answer(401, { error: errorMessage(err), code }, { "www-authenticate": 'Bearer realm="agent-cron-hooks", error="invalid_token"' });
    if (kindOf(err) === "user") return answer(409, { error: errorMessage(err), code });
    return answer(500, { error: errorMessage(err) });
  }
}
