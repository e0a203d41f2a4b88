import { z } from "zod";
import { RUN_STATUSES } from "../../core/jobs.js";
import { ROW_RESPONSE_CHARS, runRowSchema, notRunStatus, runOutcomeText } from "../../core/views.js";
import { defineTool, ok } from "../tool.js";
import { cursor, jobRef } from "./shared.js";

export const listRunsTool = defineTool({
  name: "list_runs",
  config: {
    title: "List runs",
    description:
      `List runs, newest first, of one job or all, optionally by status; rows hold the first ${ROW_RESPONSE_CHARS} characters ` +
      'of the answer, get_run the whole run. Example: {"job": "log-audit", "status": "failed", "limit": 5}.',
    inputSchema: () =>
      z.strictObject({
        job: jobRef.optional(),
        status: z.enum(RUN_STATUSES).optional().describe("Only runs with this status"),
        limit: z.number().int().min(1).max(100).optional().describe("Page size, default 20, at most 100"),
        cursor: cursor.optional(),
      }),
    outputSchema: () =>
      z.object({
        runs: z.array(runRowSchema()),
        next_cursor: z.string().nullable().describe("Pass it back as cursor for the next page; null on the last"),
      }),
    annotations: { title: "List runs", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  handler: (ctx) => async (args) => {
    const page = await ctx.api.listRuns(args);
    const counts = new Map<string, number>();
    for (const r of page.runs) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    const latest = page.runs[0];
    const summary = latest
      ? `${page.runs.length} run${page.runs.length === 1 ? "" : "s"} (${[...counts].map(([s, n]) => `${n} ${s}`).join(", ")}); newest: ` +
        `${latest.job_name ?? latest.job_id} ${runOutcomeText({ ...latest, outcome: latest.outcome ?? null, outcome_note: latest.outcome_note ?? null, after_run: latest.after_run ?? null })}${latest.error && !notRunStatus(latest.status) ? `: ${latest.error}` : ""}${page.next_cursor ? "; pass next_cursor for more" : ""}.`
      : "No runs match.";
    return ok(summary, page);
  },
});
