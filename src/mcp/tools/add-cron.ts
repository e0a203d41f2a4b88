import { addJobInput } from "../../core/job-input.js";
import { UserError } from "../../kernel/errors.js";
import { checkSchemaDepth } from "../../core/output.js";
import type { Job } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { jobChangeSchema, jobChange, jobSentence } from "./shared.js";

export const addCronTool = defineTool({
  name: "add_cron",
  config: {
    title: "Schedule agent work",
    description:
      "Schedule a prompt to run later, once or recurring. Unlike a session timer (CronCreate, ScheduleWakeup) the job is durable " +
      "(survives restarts and client exits), each run is a fresh agent session, and results are kept. " +
      "Name it so a retry does not duplicate it. " +
      'Example: {"name": "log-audit", "schedule": "0 9 * * 1-5", "timezone": "Europe/Paris", "prompt": "Audit yesterday\'s logs"}; ' +
      'a follow-up: {"schedule": "in 20m", ...}.',
    inputSchema: addJobInput,
    outputSchema: jobChangeSchema,
    annotations: { title: "Schedule agent work", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  },
  handler: (ctx) => async (args) => {
    // Before it is copied anywhere (a follower forwards it as JSON, which recurses per level).
    if (args.output_schema) checkSchemaDepth(args.output_schema);
    const created_by = ctx.clientName();
    // Under approval "ask", the user sees the job in words and decides before it is stored.
    const probe = await ctx.api.addCron({ input: args, created_by, dry_run: true });
    let approved = false;
    let answer: Awaited<ReturnType<typeof ctx.confirm>> | null = null;
    if (probe.approval === "ask" && probe.created) {
      answer = await ctx.confirm(approvalQuestion(probe.job, probe.description, created_by));
      // Only a decline is the user's no. A cancel may come from a client that showed nothing
      // (claude -p answers every elicitation so): the job then waits for a person (SPEC §20).
      if (answer === "decline") throw new UserError("The user declined to schedule this job; nothing was stored.");
      approved = answer === "accept";
    }
    const r = await ctx.api.addCron({ input: args, created_by, approved });
    // Where it runs (SPEC §17): a job that runs only while this client is open says so as a warning.
    const where = ctx.where();
    if (where && where.background === false) r.warnings.push(where.short);
    const ref = r.job.name ?? r.job.id;
    const unanswered =
      answer === "cancel" && r.job.state === "pending_approval"
        ? " The question was dismissed without an answer, so the job is kept for a person to decide."
        : "";
    const verb = !r.created
      ? "Already scheduled, unchanged:"
      : r.job.state === "pending_approval"
        ? `Waiting for a person's approval (agent-cron approve ${ref}):`
        : "Scheduled";
    const summary =
      jobSentence(verb, r.job, r.description, r.next_runs[0]) +
      unanswered +
      (r.trigger_token ? ` Start it with POST /hooks/${r.job.id} on the HTTP daemon and Authorization: Bearer ${r.trigger_token} (shown only now).` : "") +
      (where?.background ? ` ${where.short}` : "") +
      (r.warnings.length ? ` Warning: ${r.warnings.join(" ")}` : "");
    return ok(summary, {
      ...jobChange(r.job, r, { created: r.created, warnings: r.warnings }),
      ...(r.trigger_token ? { trigger_url: `/hooks/${r.job.id}`, trigger_token: r.trigger_token } : {}),
    });
  },
});

/** The job in words, as the user is asked to approve it. */
function approvalQuestion(job: Job, description: string, client: string): string {
  const prompt = job.prompt.length > 600 ? `${job.prompt.slice(0, 600)}…` : job.prompt;
  return [
    `${client} wants to schedule an agent job${job.name ? ` "${job.name}"` : ""}:`,
    `• When: ${description}`,
    `• Runs: ${job.executor ?? "the default executor"}, in ${job.work_dir ?? "a fresh folder each run"}`,
    `• Prompt: ${prompt}`,
    "Schedule it?",
  ].join("\n");
}
