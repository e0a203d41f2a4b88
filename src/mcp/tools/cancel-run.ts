import { z } from "zod";
import { RunSchema } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { runRef, runSentence } from "./shared.js";

export const cancelRunTool = defineTool({
  name: "cancel_run",
  config: {
    title: "Cancel a run",
    description:
      'Stop a run in flight (its whole process group is killed), recorded canceled; a finished run is returned as it is. Example: {"run": "<run id>"}.',
    inputSchema: () => z.strictObject({ run: runRef }),
    outputSchema: () => z.object({ run: RunSchema }),
    annotations: { title: "Cancel a run", readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  },
  handler:
    (ctx) =>
    async ({ run: id }) => {
      const { run } = await ctx.api.cancelRun({ run: id });
      return ok(runSentence(run), { run });
    },
});
