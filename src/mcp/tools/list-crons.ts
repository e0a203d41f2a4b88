import { z } from "zod";
import { JOB_STATES, JobSchema } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { cursor, jobLabel } from "./shared.js";

export const listCronsTool = defineTool({
  name: "list_crons",
  config: {
    title: "List scheduled jobs",
    description:
      "List scheduled jobs, newest last, one page at a time. Filter by state or by a substring of the name or prompt. " +
      'Example: {"state": "active", "query": "deploy"}. Pass next_cursor back as cursor for the next page.',
    inputSchema: z.strictObject({
      state: z.enum(JOB_STATES).optional().describe("Only jobs in this state (default: every state)"),
      query: z.string().max(200).optional().describe("Case-insensitive substring of the name or prompt"),
      limit: z.number().int().min(1).max(100).optional().describe("Page size, default 50, at most 100"),
      cursor: cursor.optional(),
    }),
    outputSchema: z.object({ jobs: z.array(JobSchema), next_cursor: z.string().nullable() }),
    annotations: { title: "List scheduled jobs", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  handler: (ctx) => async (args) => {
    const page = await ctx.api.listCrons(args);
    const lines = page.jobs.map((j) => `- ${jobLabel(j)} ${j.state} "${j.schedule}" next ${j.next_run_at ?? "—"}`);
    const summary = `${page.jobs.length} job(s)${page.next_cursor ? " (more: pass next_cursor)" : ""}${lines.length ? ":\n" + lines.join("\n") : "."}`;
    return ok({ ...page }, summary);
  },
});
