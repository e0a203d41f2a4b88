import { z } from "zod";
import { AddJobInput } from "../../core/job-input.js";
import { JobSchema } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { jobLabel } from "./shared.js";

export const addCronTool = defineTool({
  name: "add_cron",
  config: {
    title: "Schedule agent work",
    description:
      "Schedule a prompt to run later, once or on a recurring schedule, in an isolated agent session. " +
      "Give it a name so a retry does not create a duplicate. Preview unfamiliar schedules with preview_schedule first. " +
      'Example: {"name": "log-audit", "schedule": "0 9 * * 1-5", "timezone": "Europe/Paris", "prompt": "Audit yesterday\'s logs"}. ' +
      'For a follow-up, use a delay: {"schedule": "in 20m", "prompt": "Check whether the deploy finished"}.',
    inputSchema: AddJobInput,
    outputSchema: z.object({
      job: JobSchema,
      created: z.boolean(),
      next_runs: z.array(z.string()),
      next_runs_utc: z.array(z.string()),
      description: z.string(),
      warnings: z.array(z.string()),
    }),
    annotations: { title: "Schedule agent work", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  },
  handler: (ctx) => async (args) => {
    const result = await ctx.api.addCron({ input: args, created_by: ctx.clientName() });
    const { job, created, warnings, description } = result;
    const summary =
      `${created ? "Scheduled" : "Already scheduled:"} job ${jobLabel(job)} (${job.id}): ${description}.` +
      (result.next_runs[0] ? ` Next run ${result.next_runs[0]}.` : "") +
      (warnings.length ? ` Warning: ${warnings.join(" ")}` : "");
    return ok({ ...result }, summary);
  },
});
