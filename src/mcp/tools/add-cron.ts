import { AddJobInput } from "../../core/job-input.js";
import { defineTool, ok } from "../tool.js";
import { JobChangeSchema, jobChange, jobSentence } from "./shared.js";

export const addCronTool = defineTool({
  name: "add_cron",
  config: {
    title: "Schedule agent work",
    description:
      "Schedule a prompt to run later, once or on a recurring schedule. Unlike a session timer (CronCreate, ScheduleWakeup), " +
      "the job is durable: it survives restarts and client exits, each run starts a fresh agent session, and results are kept to read later. " +
      "Name it so a retry does not duplicate it. " +
      'Example: {"name": "log-audit", "schedule": "0 9 * * 1-5", "timezone": "Europe/Paris", "prompt": "Audit yesterday\'s logs"}; ' +
      'a follow-up: {"schedule": "in 20m", "prompt": "Check whether the deploy finished"}.',
    inputSchema: AddJobInput,
    outputSchema: JobChangeSchema,
    annotations: { title: "Schedule agent work", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  },
  handler: (ctx) => async (args) => {
    const r = await ctx.api.addCron({ input: args, created_by: ctx.clientName() });
    const summary = jobSentence(r.created ? "Scheduled" : "Already scheduled, unchanged:", r.job, r.description, r.next_runs[0]) +
      (r.warnings.length ? ` Warning: ${r.warnings.join(" ")}` : "");
    return ok(summary, jobChange(r.job, r, { created: r.created, warnings: r.warnings }));
  },
});
