import { z } from "zod";
import { JobSchema } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { jobLabel, jobRef } from "./shared.js";

export const pauseTool = defineTool({
  name: "pause",
  config: {
    title: "Pause a job",
    description: 'Stop scheduling a job without removing it; a run already going finishes. Idempotent. Example: {"job": "log-audit"}.',
    inputSchema: z.strictObject({ job: jobRef }),
    outputSchema: z.object({ job: JobSchema }),
    annotations: { title: "Pause a job", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  },
  handler: (ctx) => async ({ job }) => {
    const { job: paused } = await ctx.api.pause({ job });
    return ok({ job: paused }, `Job ${jobLabel(paused)} is ${paused.state}.`);
  },
});

export const resumeTool = defineTool({
  name: "resume",
  config: {
    title: "Resume a job",
    description:
      "Resume a paused job; scheduling restarts from now (occurrences that passed while paused are not replayed). " +
      'Idempotent. Example: {"job": "log-audit"}.',
    inputSchema: z.strictObject({ job: jobRef }),
    outputSchema: z.object({ job: JobSchema }),
    annotations: { title: "Resume a job", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  },
  handler: (ctx) => async ({ job }) => {
    const { job: resumed } = await ctx.api.resume({ job });
    return ok({ job: resumed }, `Job ${jobLabel(resumed)} is ${resumed.state}; next run ${resumed.next_run_at ?? "none"}.`);
  },
});
