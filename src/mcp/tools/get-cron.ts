import { z } from "zod";
import { JobSchema } from "../../core/jobs.js";
import { runRowSchema } from "../../core/views.js";
import { APP_VIEW_TOOL_META } from "../app-view/resource.js";
import { defineTool, ok } from "../tool.js";
import { jobRef, jobSentence } from "./shared.js";

export const getCronTool = defineTool({
  name: "get_cron",
  config: {
    title: "Show a job",
    description: 'Show one whole job with its next runs and its 10 most recent runs. Example: {"job": "log-audit"}.',
    inputSchema: () => z.strictObject({ job: jobRef }),
    outputSchema: () =>
      z.object({
        job: JobSchema,
        description: z.string().describe("The schedule in words"),
        next_runs: z.array(z.string()),
        next_runs_utc: z.array(z.string()),
        recent_runs: z.array(runRowSchema()),
      }),
    annotations: { title: "Show a job", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    // Hosts that render MCP Apps show the result in the jobs view; others ignore _meta.
    _meta: APP_VIEW_TOOL_META,
  },
  handler:
    (ctx) =>
    async ({ job: ref }) => {
      const view = await ctx.api.getCron({ job: ref });
      const last = view.recent_runs[0];
      const summary =
        jobSentence("Job", view.job, view.description, view.next_runs[0]) +
        (last ? ` Last run ${last.status}${last.error ? `: ${last.error}` : ""}.` : " It has not run yet.");
      return ok(summary, { ...view });
    },
});
