import { z } from "zod";
import { defineTool, ok } from "../tool.js";
import { jobRef } from "./shared.js";

export const removeTool = defineTool({
  name: "remove",
  config: {
    title: "Remove a job",
    description:
      "Delete a job and (unless keep_runs) its history, canceling a run in flight; pause stops it for a while instead. " + 'Example: {"job": "log-audit"}.',
    inputSchema: () =>
      z.strictObject({
        job: jobRef,
        keep_runs: z.boolean().optional().describe("Keep the job's run history and outputs (default false)"),
      }),
    outputSchema: () => z.object({ removed: z.string().describe("The removed job's id") }),
    annotations: { title: "Remove a job", readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  },
  handler:
    (ctx) =>
    async ({ job, keep_runs }) => {
      const { removed: id } = await ctx.api.remove({ job, keep_runs });
      return ok(`Removed job ${id}${keep_runs ? "; its runs were kept" : " and its runs"}.`, { removed: id });
    },
});
