import { UpdateJobInput } from "../../core/job-input.js";
import { defineTool, ok } from "../tool.js";
import { JobChangeSchema, jobChange, jobRef, jobSentence } from "./shared.js";

export const updateCronTool = defineTool({
  name: "update_cron",
  config: {
    title: "Change a job",
    description:
      "Change some fields of a job (as in add_cron; null clears an optional one); the others stay. A new schedule counts from now. " +
      'Example: {"job": "log-audit", "schedule": "0 8 * * 1-5"}.',
    inputSchema: UpdateJobInput.extend({ job: jobRef }),
    outputSchema: JobChangeSchema,
    describedElsewhere: Object.keys(UpdateJobInput.shape),
    annotations: { title: "Change a job", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  },
  handler: (ctx) => async ({ job: ref, ...patch }) => {
    const r = await ctx.api.updateCron({ job: ref, patch });
    return ok(jobSentence("Updated", r.job, r.description, r.next_runs[0]), jobChange(r.job, r));
  },
});
