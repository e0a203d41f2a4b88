import { z } from "zod";
import { defineTool, ok } from "../tool.js";
import { jobChangeSchema, jobChange, jobRef, jobSentence } from "./shared.js";

export const pauseTool = defineTool({
  name: "pause",
  config: {
    title: "Pause a job",
    description: 'Stop scheduling a job without removing it; a run already going finishes. Idempotent. Example: {"job": "log-audit"}.',
    inputSchema: () => z.strictObject({ job: jobRef }),
    outputSchema: jobChangeSchema,
    annotations: { title: "Pause a job", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  },
  handler:
    (ctx) =>
    async ({ job }) => {
      const r = await ctx.api.pause({ job });
      return ok(jobSentence("Paused", r.job, r.description, undefined), jobChange(r.job, r));
    },
});

export const resumeTool = defineTool({
  name: "resume",
  config: {
    title: "Resume a job",
    description:
      "Resume a paused job; scheduling restarts from now (what passed while paused is not replayed). " + 'Idempotent. Example: {"job": "log-audit"}.',
    inputSchema: () => z.strictObject({ job: jobRef }),
    outputSchema: jobChangeSchema,
    annotations: { title: "Resume a job", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  },
  handler:
    (ctx) =>
    async ({ job }) => {
      const r = await ctx.api.resume({ job });
      return ok(jobSentence("Resumed", r.job, r.description, r.next_runs[0]), jobChange(r.job, r));
    },
});
