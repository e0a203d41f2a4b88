import { z } from "zod";
import { RunSchema } from "../../core/jobs.js";
import { cappedOutput } from "../../core/views.js";
import { defineTool, ok } from "../tool.js";
import { runRef, runSentence } from "./shared.js";

const runWithOutputFields = () => ({
  run: RunSchema,
  job_name: z.string().nullable().describe("The job's name, if it has one"),
  output: z.string().nullable().describe("The whole answer (JSON text for json and structured jobs), cut at 32 KiB; null while running"),
  output_truncated: z.boolean().describe("true when output was cut here; cron://runs/{id} has all of it"),
});

export const getRunTool = defineTool({
  name: "get_run",
  config: {
    title: "Show a run",
    description: 'Show one whole run: its record, error, usage and its output (up to 32 KiB). Example: {"run": "<run id from list_runs>"}.',
    inputSchema: () => z.strictObject({ run: runRef }),
    outputSchema: () => z.object(runWithOutputFields()),
    annotations: { title: "Show a run", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  handler:
    (ctx) =>
    async ({ run: ref }) => {
      const { output, job_name, ...run } = await ctx.api.readRun({ run: ref });
      return ok(runSentence(run, job_name), { run, job_name, ...cappedOutput(output) });
    },
});
