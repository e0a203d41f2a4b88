import { z } from "zod";
import { TERMINAL_STATUSES } from "../../core/jobs.js";
import { RunSchema } from "../../core/jobs.js";
import { cappedOutput } from "../../core/views.js";
import { defineTool, ok } from "../tool.js";
import { jobRef, runSentence } from "./shared.js";

const PROGRESS_EVERY_MS = 1000;

export const runNowTool = defineTool({
  name: "run_now",
  config: {
    title: "Run a job now",
    description:
      "Run a job now, outside its schedule: the running record at once, or with wait: true the finished run and its output. " +
      'Example: {"job": "log-audit", "wait": true}.',
    inputSchema: () =>
      z.strictObject({
        job: jobRef,
        wait: z.boolean().optional().describe("Wait for the run to finish (default false)"),
      }),
    outputSchema: () =>
      z.object({
        run: RunSchema,
        output: z.string().nullable().describe("With wait: the whole answer, cut at 32 KiB; otherwise null"),
        output_truncated: z.boolean(),
      }),
    annotations: { title: "Run a job now", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  },
  handler:
    (ctx) =>
    async ({ job: ref, wait }, extra) => {
      const started = await ctx.api.runNow({ job: ref });
      let run = started.run;
      if (wait) {
        const token = extra._meta?.progressToken;
        const t0 = Date.now();
        let tick = 0;
        const timer =
          token === undefined
            ? null
            : setInterval(() => {
                void extra
                  .sendNotification({
                    method: "notifications/progress",
                    params: { progressToken: token, progress: ++tick, message: `Run ${run.id} still going (${Math.round((Date.now() - t0) / 1000)} s)` },
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
      const output = done && wait ? cappedOutput((await ctx.api.readRun({ run: run.id })).output) : { output: null, output_truncated: false };
      return ok(runSentence(run, started.job_name), { run, ...output });
    },
});
