import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  type CallToolResult,
  type ServerNotification,
  type ServerRequest,
  type Tool,
  type ToolAnnotations,
} from "@modelcontextprotocol/sdk/types.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { createHash } from "node:crypto";
import type { z } from "zod";
import type { CronApi } from "../core/api.js";
import type { Residence } from "../backends/files/share/background.js";
import { UserError, errorMessage, kindOf } from "../kernel/errors.js";
import { lazily } from "../kernel/lazy.js";
import { describeIssue, quote } from "../kernel/issues.js";
import { VERSION } from "../version.js";
import { portableJsonSchema } from "./schema.js";

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** What a tool handler may use besides its arguments. */
export interface ToolContext {
  api: CronApi;
  /** "name/version" of the connected client, for `created_by`. */
  clientName(): string;
  /** Where the jobs run (a background owner, or only while a client is open); null when the API cannot tell. */
  where(): Residence | null;
  log(level: "info" | "warning" | "error", message: string): void;
  /**
   * Asks the user to confirm something through the client (MCP elicitation). "unsupported"
   * when the client cannot ask.
   */
  confirm(message: string): Promise<"accept" | "decline" | "cancel" | "unsupported">;
}

export interface ToolDef<In extends z.ZodType> {
  name: string;
  config: {
    title: string;
    description: string;
    inputSchema: In;
    /** The answer's fields after `summary`, which every answer starts with. */
    outputSchema: z.ZodObject;
    annotations: ToolAnnotations;
    /**
     * Field descriptions to leave out of the listed input schema because another tool's
     * schema already gives them (update_cron repeats add_cron's fields): every byte of
     * tools/list is read by the model.
     */
    describedElsewhere?: readonly string[] | (() => readonly string[]);
    _meta?: Record<string, unknown>;
  };
  handler: (ctx: ToolContext) => (args: z.infer<In>, extra: Extra) => Promise<CallToolResult>;
}

/** A tool as its file writes it: the schemas as functions that make them. */
export interface ToolSpec<In extends z.ZodType> extends Omit<ToolDef<In>, "config"> {
  config: Omit<ToolDef<In>["config"], "inputSchema" | "outputSchema"> & { inputSchema: () => In; outputSchema: () => z.ZodObject };
}

/**
 * Each schema is made the first time it is read: a server answers tools/list from the build's
 * JSON (early-stdio.ts) and parses only the input of the tools it is called with, so the rest
 * of the tools' ~250 zod schemas were heap it never used (issue 27's RSS).
 */
export function defineTool<In extends z.ZodType>(spec: ToolSpec<In>): ToolDef<In> {
  const inputSchema = lazily(spec.config.inputSchema);
  const outputSchema = lazily(spec.config.outputSchema);
  const config = Object.defineProperties({ ...spec.config } as unknown as ToolDef<In>["config"], {
    inputSchema: { get: inputSchema, enumerable: true },
    outputSchema: { get: outputSchema, enumerable: true },
  });
  return { ...spec, config };
}

/**
 * A success. Claude Code and Codex show the model only structuredContent, so it starts with
 * the one sentence a person wants (`summary`); the text blocks carry the same sentence and,
 * for clients that read text only, the JSON.
 */
export function ok(summary: string, fields: Record<string, unknown>): CallToolResult {
  const structured = { summary, ...fields };
  return {
    content: [
      { type: "text", text: summary },
      { type: "text", text: JSON.stringify(structured) },
    ],
    structuredContent: structured,
  };
}

/**
 * Turns any failure into an `isError` result with one clear sentence that starts with the
 * tool's name (Codex shows errors as plain output, so the model must see that the call
 * failed). The server never crashes on input.
 */
export function failure(tool: string, err: unknown): CallToolResult {
  const reason = kindOf(err) === "internal" ? `internal error: ${errorMessage(err)}` : errorMessage(err);
  // One line, whatever a message echoes of the caller's input.
  const text = `${tool} failed: ${reason}`.replace(/[\u0000-\u001f\u007f]+/g, " ");
  return { content: [{ type: "text", text }], isError: true };
}

/** A function when the names come from a schema, so that defining the tool builds none. */
function describedElsewhere(t: ToolDef<z.ZodType>): readonly string[] {
  const fields = t.config.describedElsewhere ?? [];
  return typeof fields === "function" ? fields() : fields;
}

/** The tool list as clients get it, computed once per process: zod is not converted per request. */
const listed = new WeakMap<readonly ToolDef<z.ZodType>[], Tool[]>();

export function toolDefinitions(tools: readonly ToolDef<z.ZodType>[]): Tool[] {
  let list = listed.get(tools);
  if (!list) {
    list = withSharedIds(
      tools.map((t) => ({
        name: t.name,
        title: t.config.title,
        description: t.config.description,
        inputSchema: withoutLengths(withoutDescriptions(portableJsonSchema(t.config.inputSchema, "input"), describedElsewhere(t))) as Tool["inputSchema"],
        outputSchema: outline(detailedOutputSchema(t)) as Tool["outputSchema"],
        annotations: t.config.annotations,
        ...(t.config._meta ? { _meta: t.config._meta } : {}),
      })),
    );
    listed.set(tools, list);
  }
  return list;
}

/**
 * Gives each output schema that several tools list (add_cron, pause, resume and update_cron
 * answer the same job answer) one `$id`, the same in each. An SDK client compiles an Ajv
 * validator for every tool's output schema on listTools(), but one whose `$id` it has compiled
 * already it takes from Ajv's cache (AjvJsonSchemaValidator.getValidator): a compile per
 * distinct schema instead of per tool, on every connection (issue 27's restart to listTools()).
 * The id names the version and a digest of the schema, so two schemas never meet under one id,
 * even in a client that keeps one Ajv for several servers or builds. A schema only one tool
 * lists keeps none.
 */
function withSharedIds(list: Tool[]): Tool[] {
  const listers = new Map<string, number>();
  for (const t of list) {
    const json = JSON.stringify(t.outputSchema);
    listers.set(json, (listers.get(json) ?? 0) + 1);
  }
  return list.map((t) => {
    const json = JSON.stringify(t.outputSchema);
    if ((listers.get(json) ?? 0) < 2) return t;
    const digest = createHash("sha256").update(json).digest("hex").slice(0, 12);
    return { ...t, outputSchema: { $id: `urn:agent-cron:${VERSION}:${digest}`, ...t.outputSchema } as Tool["outputSchema"] };
  });
}

/**
 * Every field of a tool's answer, nested records included, as portable JSON Schema: what the
 * answers are checked against (test/mcp/every-tool.test.ts). tools/list gives its outline.
 */
export function detailedOutputSchema(t: ToolDef<z.ZodType>): Schema {
  const output = portableJsonSchema(t.config.outputSchema, "output");
  const properties = { summary: { type: "string", description: "One sentence saying what happened" }, ...(output.properties as object) };
  // Once each: a schema whose `required` repeats a name is invalid JSON Schema.
  const required = [...new Set(["summary", ...((output.required as string[] | undefined) ?? [])])];
  return { ...output, type: "object", properties, required };
}

type Schema = Record<string, unknown>;

/**
 * The output schema tools/list gives: every field of the answer as it is (`summary` first, the
 * same `required`), and each record inside it (a job, a run, a row of a list) by the fields it
 * always has, not each one's type. An SDK client compiles a validator for every tool's output
 * schema on `listTools()`, and the records' dozens of nullable fields were most of that compile
 * (issue 27, README Benchmarks); the records are spelled out in the README and the resources.
 */
function outline(schema: Schema): Schema {
  const properties = Object.fromEntries(Object.entries(schema.properties as Record<string, Schema>).map(([k, v]) => [k, outlineField(v)]));
  return { ...schema, properties };
}

function outlineField(node: Schema): Schema {
  if (isRecord(node)) return recordOutline(node);
  if (node.type === "array" && isRecord(node.items)) return { ...node, items: recordOutline(node.items as Schema) };
  if (Array.isArray(node.anyOf)) return { ...node, anyOf: (node.anyOf as Schema[]).map((b) => (isRecord(b) ? recordOutline(b) : b)) };
  return node;
}

function isRecord(node: unknown): boolean {
  return !!node && typeof node === "object" && (node as Schema).type === "object" && !!(node as Schema).properties;
}

function recordOutline(node: Schema): Schema {
  const required = (node.required as string[] | undefined) ?? [];
  const described = typeof node.description === "string" ? { description: node.description } : {};
  return { type: "object", ...described, ...fieldsPresent(Object.keys(node.properties as Schema), required, node.additionalProperties === false) };
}

/**
 * Which fields a record always has, said so that an Ajv validator compiles it cheaply. Ajv with
 * `allErrors` (an SDK client's default) writes an error branch for each name in `required`: a
 * job's 57 and a run's 31 were a third of a client's compile on listTools() (issue 27's
 * restart). A record that allows no other fields says the same by counting: its keys are among
 * its field names, and there are at least as many as it always has (with one optional field,
 * how many depends on whether that one is there). Otherwise the names are listed.
 */
function fieldsPresent(names: string[], required: string[], closed: boolean): Schema {
  const optional = names.filter((n) => !required.includes(n));
  if (!closed || optional.length > 1) return required.length ? { required } : {};
  const only = { propertyNames: { enum: names } };
  if (optional.length === 0) return { ...only, minProperties: names.length };
  // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then/else, a plain value that nothing awaits
  return { ...only, if: { required: optional }, then: { minProperties: names.length }, else: { minProperties: required.length } };
}

/**
 * A field another tool's schema documents keeps only its type here: its description, values
 * and bounds are read there (the server checks them either way).
 */
const RESTATED = new Set([
  "description",
  "enum",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "maxItems",
  "minItems",
]);

function withoutDescriptions(schema: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  if (!fields.length) return schema;
  const properties = { ...(schema.properties as Record<string, Record<string, unknown>>) };
  for (const f of fields) if (properties[f]) properties[f] = typeOnly(properties[f]) as Record<string, unknown>;
  return { ...schema, properties };
}

/**
 * A string's length bounds are left out of the schema a model reads: they guard the server
 * (ids of 200 characters, paths of 4,096) rather than shape a value a model would write, and
 * they were a twelfth of the tool definitions' bytes, which sit in the model's context all
 * session (issue 6's budget). The server still checks them, and a breach names the field and
 * the bound.
 */
function withoutLengths(node: unknown, isPropertyMap = false): unknown {
  if (Array.isArray(node)) return node.map((n) => withoutLengths(n));
  if (!node || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      // In `properties` a key is a field's name (a field may be called maxLength).
      .filter(([k]) => isPropertyMap || (k !== "minLength" && k !== "maxLength"))
      .map(([k, v]) => [k, withoutLengths(v, !isPropertyMap && k === "properties")]),
  );
}

function typeOnly(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(typeOnly);
  if (!node || typeof node !== "object") return node;
  // An object's fields are read there too (after, output_schema).
  if ((node as Record<string, unknown>).type === "object") return { type: "object" };
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k]) => !RESTATED.has(k))
      .map(([k, v]) => [k, typeOnly(v)]),
  );
}

/** The tools a server serves: the list itself, or a loader that imports them when first needed. */
export type ToolSource = readonly ToolDef<z.ZodType>[] | (() => Promise<readonly ToolDef<z.ZodType>[]>);

/**
 * Answers `tools/list` and `tools/call` ourselves: the list is precomputed and portable (see
 * schema.ts), and a bad argument gets one sentence naming the field instead of zod's
 * multi-line report. With `prepared` (the list as the build wrote it, scripts/bundle.mjs) and a
 * loader, the first `tools/list` answers without the tools' modules: building their zod schemas
 * and converting them to JSON was a third of a cold start. They load right after that answer,
 * or at the first call.
 */
export function registerTools(server: McpServer, ctx: ToolContext, source: ToolSource, prepared?: Tool[]): void {
  type Handlers = Map<string, { def: ToolDef<z.ZodType>; run: ReturnType<ToolDef<z.ZodType>["handler"]> }>;
  let loading: Promise<{ tools: readonly ToolDef<z.ZodType>[]; handlers: Handlers }> | null = null;
  const load = () =>
    (loading ??= (async () => {
      const tools = typeof source === "function" ? await source() : source;
      const handlers: Handlers = new Map();
      for (const tool of tools) handlers.set(tool.name, { def: tool, run: tool.handler(ctx) });
      return { tools, handlers };
    })());
  if (typeof source !== "function") void load();
  server.server.setRequestHandler(ListToolsRequestSchema, async () => {
    if (prepared) {
      // After the answer is on its way, so that loading the tools never delays it.
      setTimeout(() => void load().catch((err) => ctx.log("error", `Loading the tools failed: ${errorMessage(err)}`)), 0);
      return { tools: prepared };
    }
    return { tools: toolDefinitions((await load()).tools) };
  });
  server.server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const name = request.params.name;
    const entry = (await load()).handlers.get(name);
    if (!entry) return failure(name, new UserError(`unknown tool ${quote(name)}; tools/list shows the tools.`));
    const raw = request.params.arguments ?? {};
    const parsed = entry.def.config.inputSchema.safeParse(raw);
    if (!parsed.success) return failure(name, new UserError(describeIssue(parsed.error.issues[0] as z.core.$ZodIssue, raw)));
    try {
      return await entry.run(parsed.data as never, extra);
    } catch (err) {
      if (kindOf(err) !== "user") ctx.log("error", `Tool ${name} failed: ${errorMessage(err)}`);
      return failure(name, err);
    }
  });
}
