import { z } from "zod";
import { RUN_STATUSES, RunSchema } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { cursor, jobRef, runLine, runLink } from "./shared.js";

export const listRunsTool = defineTool({
  name: "list_runs",
  config: {
    title: "List runs",
    description:
      "List runs, newest first, of one job or of all jobs, optionally by status. Each run's response holds the first 4 KiB " +
      'of its output; read cron://runs/{id} for the whole output. Example: {"job": "log-audit", "status": "failed", "limit": 5}.',
    inputSchema: z.strictObject({
      job: jobRef.optional(),
      status: z.enum(RUN_STATUSES).optional().describe("Only runs with this status"),
      limit: z.number().int().min(1).max(100).optional().describe("Page size, default 20, at most 100"),
      cursor: cursor.optional(),
    }),
    outputSchema: z.object({ runs: z.array(RunSchema), next_cursor: z.string().nullable() }),
    annotations: { title: "List runs", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  handler: (ctx) => async (args) => {
    const page = await ctx.api.listRuns(args);
    const summary = `${page.runs.length} run(s)${page.next_cursor ? " (more: pass next_cursor)" : ""}${page.runs.length ? ":\n" + page.runs.map((r) => `- ${runLine(r)}`).join("\n") : "."}`;
    return ok({ ...page }, summary, page.runs.map(runLink));
  },
});
