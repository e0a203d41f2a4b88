import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";
import { RUN_TOOL_SPECS, type RunToolName } from "../core/run-tools.js";
import { callRunTool } from "../run-tools/channel.js";
import { VERSION } from "../version.js";
import { LazyAjvValidator } from "./elicit-validator.js";

/**
 * `agent-cron run-tools`: the MCP server an agent CLI starts for one run (SPEC §21), from the
 * MCP configuration agent-cron gave that run. It holds the run's one-time token (in its own
 * environment, set by that configuration) and forwards each call to the owner over the run's
 * socket; the owner decides. It offers only the tools its run has.
 */
export async function serveRunTools(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const socket = env.AGENT_CRON_RUN_TOOLS_SOCKET;
  const token = env.AGENT_CRON_RUN_TOOLS_TOKEN;
  if (!socket || !token) {
    throw new Error(
      "agent-cron run-tools is started by agent-cron for one run (AGENT_CRON_RUN_TOOLS_SOCKET and AGENT_CRON_RUN_TOOLS_TOKEN are not set); there is nothing to run by hand.",
    );
  }
  const names = (env.AGENT_CRON_RUN_TOOLS ?? "report_nothing,remember,ask_person").split(",").filter((n): n is RunToolName => n in RUN_TOOL_SPECS);
  const server = new McpServer(
    { name: "agent-cron-run", version: VERSION },
    {
      instructions:
        "Tools for this scheduled agent-cron run: report_nothing when there is nothing worth telling, remember to leave a note for the next runs, ask_person when a person must decide.",
      jsonSchemaValidator: new LazyAjvValidator(),
    },
  );
  for (const name of names) {
    const spec = RUN_TOOL_SPECS[name];
    server.registerTool(
      name,
      {
        title: spec.title,
        description: spec.description,
        inputSchema: spec.input(),
        outputSchema: {
          summary: z.string().describe("What happened, in one sentence"),
          outcome: z.enum(["quiet", "needs_attention"]).optional().describe("How this run will end"),
          notes_kept: z.number().optional().describe("remember: how many notes the job keeps"),
          state: z.string().optional().describe("pause_me, reschedule_me: the job's state now"),
          next_run_at: z.string().nullable().optional().describe("reschedule_me: the next run, if any"),
        },
        annotations: { title: spec.title, readOnlyHint: false, destructiveHint: false, openWorldHint: false },
      },
      async (args: Record<string, unknown>) => {
        const r = await callRunTool(socket, token, name, args);
        if (!r.ok) return { isError: true, content: [{ type: "text" as const, text: `${name} failed: ${r.error}` }] };
        const summary = String(r.result.summary ?? "Done.");
        return { content: [{ type: "text" as const, text: summary }], structuredContent: { ...r.result, summary } };
      },
    );
  }
  const transport = new StdioServerTransport();
  process.stdin.once("end", () => process.exit(0));
  await server.connect(transport);
}
