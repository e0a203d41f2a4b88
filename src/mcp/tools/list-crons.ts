import { z } from "zod";
import { JOB_STATES } from "../../core/jobs.js";
import { JobRowSchema } from "../../core/views.js";
import { APP_VIEW_TOOL_META } from "../app-view/resource.js";
import { defineTool, ok } from "../tool.js";
import { cursor, jobLabel } from "./shared.js";

export const listCronsTool = defineTool({
  name: "list_crons",
  config: {
    title: "List scheduled jobs",
    description:
      "List the durable jobs (they outlive this session), 20 a page, as compact rows; get_cron shows one whole. " +
      'Filter by state or by a substring of name or prompt. Example: {"state": "active", "query": "deploy"}.',
    inputSchema: z.strictObject({
      state: z.enum(JOB_STATES).optional().describe("Only jobs in this state (default: every state)"),
      query: z.string().max(200).optional().describe("Case-insensitive substring of the name or prompt"),
      limit: z.number().int().min(1).max(100).optional().describe("Page size, default 20, at most 100"),
      cursor: cursor.optional(),
    }),
    outputSchema: z.object({
      jobs: z.array(JobRowSchema),
      total: z.number().describe("Jobs matching the filter, on every page"),
      next_cursor: z.string().nullable().describe("Pass it back as cursor for the next page; null on the last"),
    }),
    annotations: { title: "List scheduled jobs", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    // Hosts that render MCP Apps show the result in the jobs view; others ignore _meta.
    _meta: APP_VIEW_TOOL_META,
  },
  handler: (ctx) => async (args) => {
    const page = await ctx.api.listCrons(args);
    // Names only for a short page: the rows carry them anyway, and every byte is read.
    const states = new Map<string, number>();
    for (const j of page.jobs) states.set(j.state, (states.get(j.state) ?? 0) + 1);
    const shown = page.jobs.length <= 5 ? page.jobs.map((j) => `${jobLabel(j)} (${j.state})`).join(", ") : [...states].map(([st, n]) => `${n} ${st}`).join(", ");
    const summary = page.total === 0
      ? "No jobs match."
      : `${page.total} job${page.total === 1 ? "" : "s"}${page.jobs.length < page.total ? `, ${page.jobs.length} on this page` : ""}: ${shown}${page.next_cursor ? "; pass next_cursor for more" : ""}.`;
    return ok(summary, page);
  },
});
