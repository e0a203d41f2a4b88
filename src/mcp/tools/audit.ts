import { z } from "zod";
import { lazily } from "../../kernel/lazy.js";
import { OUTCOMES } from "../../core/ledger.js";
import { defineTool, ok } from "../tool.js";

const counts = lazily(() =>
  z
    .object(Object.fromEntries(OUTCOMES.map((o) => [o, z.number().optional()])))
    .describe("Occurrences by how they ended; pending: queued, waiting out jitter, or running"),
);

export const auditTool = defineTool({
  name: "audit",
  config: {
    title: "Audit the occurrences",
    description:
      "Did every scheduled occurrence run? Counts each job's occurrences by outcome and lists any due with no record. " +
      'Example: {"job": "log-audit", "since": "7d"}.',
    inputSchema: () =>
      z.strictObject({
        job: z.string().min(1).max(200).optional().describe("Job (default all)"),
        since: z.string().min(1).max(64).optional().describe('"7d" (default), "24h" or an ISO time'),
        limit: z.number().int().min(1).max(100).optional().describe("Jobs listed (default 20)"),
      }),
    outputSchema: () =>
      z.object({
        since: z.string(),
        until: z.string(),
        jobs_audited: z.number(),
        occurrences: z.number().describe("Occurrences due in the window"),
        unaccounted: z.number().describe("Due with no record"),
        counts: counts(),
        jobs: z.array(
          z.object({
            job_id: z.string(),
            name: z.string().nullable(),
            from: z.string().describe("Where this job's audit starts: since, its creation, or its oldest kept record"),
            due: z.number(),
            counts: counts(),
            unaccounted: z.number(),
            unaccounted_at: z.array(z.string()).describe("The first 20 occurrences with no record"),
            duplicates: z.number().describe("Occurrences with more than one record"),
          }),
        ),
        more_jobs: z.number().describe("Jobs not listed (all accounted for)"),
      }),
    annotations: { title: "Audit the occurrences", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  handler:
    (ctx) =>
    async ({ job, since, limit }) => {
      const report = await ctx.api.audit({ job, since, limit });
      return ok(report.summary, { ...report });
    },
});
