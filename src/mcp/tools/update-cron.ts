import { updateJobInput } from "../../core/job-input.js";
import { checkSchemaDepth } from "../../core/output.js";
import { defineTool, ok } from "../tool.js";
import { jobChangeSchema, jobChange, jobRef, jobSentence } from "./shared.js";

export const updateCronTool = defineTool({
  name: "update_cron",
  config: {
    title: "Change a job",
    description:
      "Change some fields of a job (as in add_cron; null clears an optional one); the others stay. A new schedule counts from now. " +
      'Example: {"job": "log-audit", "schedule": "0 8 * * 1-5"}.',
    inputSchema: () => updateJobInput().extend({ job: jobRef }),
    outputSchema: jobChangeSchema,
    describedElsewhere: () => Object.keys(updateJobInput().shape),
    annotations: { title: "Change a job", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  },
  handler:
    (ctx) =>
    async ({ job: ref, ...patch }) => {
      if (patch.output_schema) checkSchemaDepth(patch.output_schema);
      const before = await ctx.api.getCron({ job: ref }).catch(() => null);
      const r = await ctx.api.updateCron({ job: ref, patch, by: ctx.clientName() });
      // Under config approval, a change of what a job does or where its results go needs a
      // person again (SPEC §20): the answer says so, and how they approve it.
      const last = r.job.approvals.at(-1);
      const sentBack = r.job.state === "pending_approval" && before?.job.state !== "pending_approval" && last?.event === "sent_back";
      const verb = sentBack
        ? `Updated, and sent back for a person's approval because ${last.fields?.join(", ")} changed (they approve it with: agent-cron approve ${r.job.name ?? r.job.id}):`
        : r.job.state === "pending_approval"
          ? `Updated; still waiting for a person's approval (agent-cron approve ${r.job.name ?? r.job.id}):`
          : "Updated";
      return ok(jobSentence(verb, r.job, r.description, r.next_runs[0]), jobChange(r.job, r));
    },
});
