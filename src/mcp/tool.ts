import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { CallToolRequestSchema, type CallToolResult, type ServerNotification, type ServerRequest, type ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { z } from "zod";
import type { CronApi } from "../core/api.js";
import { UserError, errorMessage } from "../core/errors.js";
import { describeIssue, quote } from "../core/issues.js";

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** What a tool handler may use besides its arguments. */
export interface ToolContext {
  api: CronApi;
  /** "name/version" of the connected client, for `created_by`. */
  clientName(): string;
  log(level: "info" | "warning" | "error", message: string): void;
}

export interface ToolDef<In extends z.ZodType> {
  name: string;
  config: {
    title: string;
    description: string;
    inputSchema: In;
    outputSchema: z.ZodType;
    annotations: ToolAnnotations;
  };
  handler: (ctx: ToolContext) => (args: z.infer<In>, extra: Extra) => Promise<CallToolResult>;
}

export function defineTool<In extends z.ZodType>(def: ToolDef<In>): ToolDef<In> {
  return def;
}

/** A success: a one-line summary for people, the JSON for models that read text, and structuredContent. */
export function ok(structured: Record<string, unknown>, summary: string, extra: CallToolResult["content"] = []): CallToolResult {
  return {
    content: [
      { type: "text", text: summary },
      ...extra,
      { type: "text", text: JSON.stringify(structured) },
    ],
    structuredContent: structured,
  };
}

/** Turns any failure into an `isError` result with one clear sentence; the server never crashes on input. */
export function failure(err: unknown): CallToolResult {
  const text = err instanceof UserError ? err.message : `Internal error: ${errorMessage(err)}`;
  // One line, whatever a message echoes of the caller's input.
  return { content: [{ type: "text", text: text.replace(/[\u0000-\u001f\u007f]+/g, " ") }], isError: true };
}

/**
 * Registers the tools, then answers `tools/call` ourselves: the SDK would validate the
 * arguments too, but its message lists every zod issue on its own line in zod's words;
 * ours is one sentence naming the field. tools/list still comes from the SDK.
 */
export function registerTools(server: McpServer, ctx: ToolContext, tools: readonly ToolDef<z.ZodType>[]): void {
  const handlers = new Map<string, { def: ToolDef<z.ZodType>; run: ReturnType<ToolDef<z.ZodType>["handler"]> }>();
  for (const tool of tools) {
    handlers.set(tool.name, { def: tool, run: tool.handler(ctx) });
    server.registerTool(tool.name, tool.config as never, (() => {
      throw new Error("unreachable: tools/call is answered by registerTools");
    }) as never);
  }
  server.server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const entry = handlers.get(request.params.name);
    if (!entry) return failure(new UserError(`Unknown tool ${quote(request.params.name)}; tools/list shows the tools.`));
    const raw = request.params.arguments ?? {};
    const parsed = entry.def.config.inputSchema.safeParse(raw);
    if (!parsed.success) return failure(new UserError(describeIssue(parsed.error.issues[0] as z.core.$ZodIssue, raw)));
    try {
      return await entry.run(parsed.data as never, extra);
    } catch (err) {
      if (!(err instanceof UserError)) ctx.log("error", `Tool ${entry.def.name} failed: ${errorMessage(err)}`);
      return failure(err);
    }
  });
}
