import { z } from "zod";
import { UpdateJobInput } from "../../core/job-input.js";
import { JobSchema } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { jobLabel, jobRef } from "./shared.js";

export const updateCronTool = defineTool({
  name: "update_cron",
  config: {
    title: "Change a job",
    description:
      "Change some fields of a job; the others stay. null clears an optional field. A new schedule starts counting from now. " +
      'Example: {"job": "log-audit", "schedule": "0 8 * * 1-5", "prompt": "Audit the logs and list new errors"}.',
    inputSchema: UpdateJobInput.extend({ job: jobRef }),
    outputSchema: z.object({ job: JobSchema, next_runs: z.array(z.string()), next_runs_utc: z.array(z.string()) }),
    annotations: { title: "Change a job", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  },
  handler: (ctx) => async ({ job: ref, ...patch }) => {
    const { job, description, next_runs, next_runs_utc } = await ctx.api.updateCron({ job: ref, patch });
    return ok({ job, next_runs, next_runs_utc }, `Updated job ${jobLabel(job)}: ${description}. Next run ${next_runs[0] ?? "none"}.`);
  },
});
