import { z } from "zod";
import { JOB_STATES } from "../../core/jobs.js";
import { listRowSchema, ROW_OPTIONAL_FIELDS, listRow } from "../../core/views.js";
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
    inputSchema: () =>
      z.strictObject({
        state: z.enum(JOB_STATES).optional().describe("Only jobs in this state"),
        query: z.string().max(200).optional().describe("Substring of the name or prompt"),
        limit: z.number().int().min(1).max(100).optional().describe("Page size, default 20, at most 100"),
        cursor: cursor.optional(),
        fields: z.array(z.enum(ROW_OPTIONAL_FIELDS)).max(ROW_OPTIONAL_FIELDS.length).optional().describe("Row fields to give even when null or default"),
      }),
    outputSchema: () =>
      z.object({
        jobs: z.array(listRowSchema()).describe("Rows leave out null fields, state active, and the schedule in words when it is a nickname or @every"),
        total: z.number().describe("Jobs matching the filter, on every page"),
        next_cursor: z.string().nullable().describe("Pass it back as cursor for the next page; null on the last"),
        timezone: z.string().optional().describe("The server's timezone: a row without one is in it"),
      }),
    annotations: { title: "List scheduled jobs", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    // Hosts that render MCP Apps show the result in the jobs view; others ignore _meta.
    _meta: APP_VIEW_TOOL_META,
  },
  handler: (ctx) => async (args) => {
    const { fields, ...filter } = args;
    const page = await ctx.api.listCrons(filter);
    // Names only for a short page: the rows carry them anyway, and every byte is read.
    const states = new Map<string, number>();
    for (const j of page.jobs) states.set(j.state, (states.get(j.state) ?? 0) + 1);
    const shown =
      page.jobs.length <= 5 ? page.jobs.map((j) => `${jobLabel(j)} (${j.state})`).join(", ") : [...states].map(([st, n]) => `${n} ${st}`).join(", ");
    const where = ctx.where();
    const summary =
      (page.total === 0
        ? "No jobs match."
        : `${page.total} job${page.total === 1 ? "" : "s"}${page.jobs.length < page.total ? `, ${page.jobs.length} on this page` : ""}: ${shown}${page.next_cursor ? "; pass next_cursor for more" : ""}.`) +
      (where ? ` ${where.short}` : "");
    const keep = new Set(fields ?? []);
    const jobs = page.jobs.map((j) => listRow(j, page.timezone, keep));
    return ok(summary, { jobs, total: page.total, next_cursor: page.next_cursor, ...(page.timezone ? { timezone: page.timezone } : {}) });
  },
});
