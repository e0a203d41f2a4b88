import { z } from "zod";
import { defineTool, ok } from "../tool.js";

export const previewScheduleTool = defineTool({
  name: "preview_schedule",
  config: {
    title: "Preview a schedule",
    description:
      "See when a schedule would fire, storing nothing; use it before add_cron to confirm schedule and timezone with the user. " +
      'Example: {"schedule": "0 9 * * 1-5", "timezone": "Europe/Paris", "count": 3}.',
    inputSchema: () =>
      z.strictObject({
        schedule: z.string().min(1).max(200).describe('cron ("0 9 * * 1-5"), "@every 15m", an ISO time, or "in 20m"'),
        timezone: z.string().min(1).max(64).optional().describe("IANA timezone (default: the server's)"),
        count: z.number().int().min(1).max(50).optional().describe("Occurrences to show (default 5)"),
      }),
    outputSchema: () =>
      z.object({
        valid: z.boolean(),
        description: z.string(),
        next_runs: z.array(z.string()),
        next_runs_utc: z.array(z.string()),
        error: z.string().optional().describe("Why the schedule is invalid"),
      }),
    annotations: { title: "Preview a schedule", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  handler:
    (ctx) =>
    async ({ schedule, timezone, count }) => {
      const p = await ctx.api.previewSchedule({ schedule, timezone, count });
      return ok(p.valid ? `${p.description}; next: ${p.next_runs.slice(0, 3).join(", ") || "none"}.` : `Invalid schedule: ${p.error}`, { ...p });
    },
});
