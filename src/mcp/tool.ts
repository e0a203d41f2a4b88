import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult, ServerNotification, ServerRequest, ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { z } from "zod";
import type { CronApi } from "../core/api.js";
import { UserError, errorMessage } from "../core/errors.js";

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
  return { content: [{ type: "text", text }], isError: true };
}

export function registerTools(server: McpServer, ctx: ToolContext, tools: readonly ToolDef<z.ZodType>[]): void {
  for (const tool of tools) {
    const handler = tool.handler(ctx);
    server.registerTool(tool.name, tool.config as never, (async (args: unknown, extra: Extra) => {
      try {
        return await handler(args as never, extra);
      } catch (err) {
        if (!(err instanceof UserError)) ctx.log("error", `Tool ${tool.name} failed: ${errorMessage(err)}`);
        return failure(err);
      }
    }) as never);
  }
}
