import { z } from "zod";
import { RunSchema, TERMINAL_STATUSES } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { jobRef, runLink } from "./shared.js";

const PROGRESS_EVERY_MS = 1000;

export const runNowTool = defineTool({
  name: "run_now",
  config: {
    title: "Run a job now",
    description:
      "Start a run of a job right away, outside its schedule. By default it returns at once with the running record; " +
      'with wait: true it returns the finished run (sending progress notifications meanwhile). Example: {"job": "log-audit", "wait": true}.',
    inputSchema: z.strictObject({
      job: jobRef,
      wait: z.boolean().optional().describe("Wait for the run to finish (default false)"),
    }),
    outputSchema: z.object({ run: RunSchema }),
    annotations: { title: "Run a job now", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  },
  handler: (ctx) => async ({ job: ref, wait }, extra) => {
    let { run } = await ctx.api.runNow({ job: ref });
    if (wait) {
      const token = extra._meta?.progressToken;
      const started = Date.now();
      let tick = 0;
      const timer =
        token === undefined
          ? null
          : setInterval(() => {
              void extra
                .sendNotification({
                  method: "notifications/progress",
                  params: { progressToken: token, progress: ++tick, message: `Run ${run.id} still going (${Math.round((Date.now() - started) / 1000)} s)` },
                })
                .catch(() => {});
            }, PROGRESS_EVERY_MS);
      try {
        // A client that gives up stops the wait, not the run.
        const aborted = new Promise<null>((resolve) => extra.signal.addEventListener("abort", () => resolve(null), { once: true }));
        run = (await Promise.race([ctx.api.waitRun({ run: run.id }), aborted]))?.run ?? run;
      } finally {
        if (timer) clearInterval(timer);
      }
    }
    const done = TERMINAL_STATUSES.has(run.status);
    const summary = done
      ? `Run ${run.id} of job ${run.job_id} ${run.status}${run.error ? `: ${run.error}` : ""}.${run.response ? `\n${run.response}` : ""}`
      : `Started run ${run.id} of job ${run.job_id}; read cron://runs/${run.id} or call list_runs for the result.`;
    return ok({ run }, summary, [runLink(run)]);
  },
});
