import { z } from "zod";
import { RunSchema, TERMINAL_STATUSES } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { jobLabel, jobRef, runLink } from "./shared.js";

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
    const job = ctx.app.resolveJob(ref);
    let run = await ctx.app.runNow(job.id);
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
        run = (await Promise.race([ctx.app.waitForRun(run.id), aborted])) ?? ctx.app.getRunRecord(run.id);
      } finally {
        if (timer) clearInterval(timer);
      }
    }
    const done = TERMINAL_STATUSES.has(run.status);
    const summary = done
      ? `Run ${run.id} of job ${jobLabel(job)} ${run.status}${run.error ? `: ${run.error}` : ""}.${run.response ? `\n${run.response}` : ""}`
      : `Started run ${run.id} of job ${jobLabel(job)}; read cron://runs/${run.id} or call list_runs for the result.`;
    return ok({ run }, summary, [runLink(run)]);
  },
});
