import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SubscribeRequestSchema, UnsubscribeRequestSchema, type LoggingLevel, type Tool } from "@modelcontextprotocol/sdk/types.js";
import type { CronApi } from "../core/api.js";
import type { Residence } from "../backends/files/share/background.js";
import type { JobChange, RunChange } from "../core/events.js";
import type { Job, Run } from "../core/jobs.js";
import { preparedAnswers, type PreparedAnswers } from "./early-stdio.js";
import { LazyAjvValidator } from "./elicit-validator.js";
import { registerResources } from "./resources.js";
import { registerTools, type ToolContext } from "./tool.js";
import { VERSION } from "../version.js";

export const SERVER_NAME = "agent-cron";
export const SERVER_VERSION = VERSION;

export const INSTRUCTIONS = `agent-cron schedules agent work for later: recurring (cron, "@every 15m") or one-shot ("in 20m", an ISO time).
- Use it, not a session-scoped timer (CronCreate, ScheduleWakeup, /loop), when the user wants something that lasts: its jobs are stored and survive restarts, each run starts a fresh agent session, and every result is kept to read later. By default (always_on "daemon") jobs run in a background owner also while no client is open; with always_on "client" only while a client is; add_cron and list_crons say which.
- Confirm the timezone with the user; schedules are read in the job's timezone (default: the server's). preview_schedule shows when a schedule fires, without storing anything.
- Give every job a short unique name: add_cron is then safe to retry, and every tool takes the name.
- For a follow-up ("check whether the deploy finished"), add a one-shot with schedule "in 20m".
- Results: list_runs shows recent runs with the first 500 characters of each answer; get_run gives a whole run and its output.
- Pause a job to stop it for a while; remove deletes it with its history.`;

/**
 * The tool list the build prepared, so that a cold start answers `tools/list` without building
 * the tools' zod schemas; undefined when running from src/ (tests), where it is computed.
 */
const preparedTools = () => (preparedAnswers()?.tools as Tool[] | undefined) ?? undefined;

const loadTools = () => import("./tools/index.js").then((m) => m.tools);

/** Loads the tools' modules now: the bin answered `tools/list` (early-stdio.ts), so no answer here starts it. */
export function preloadTools(): void {
  void loadTools().catch(() => {});
}

/**
 * What this server answers to `initialize`, asked through the SDK's own client as any client
 * asks; the build prepares it (scripts/bundle.mjs) for the early answer (early-stdio.ts). The
 * protocol version is negotiated per client, from the versions the SDK supports.
 */
export async function initializeAnswer(): Promise<NonNullable<PreparedAnswers["initialize"]>> {
  const [{ Client }, { InMemoryTransport }, { SUPPORTED_PROTOCOL_VERSIONS }, { AppEventBus }] = await Promise.all([
    import("@modelcontextprotocol/sdk/client/index.js"),
    import("@modelcontextprotocol/sdk/inMemory.js"),
    import("@modelcontextprotocol/sdk/types.js"),
    import("../core/events.js"),
  ]);
  const server = createServer({ events: new AppEventBus() } as unknown as CronApi);
  const client = new Client({ name: "agent-cron-build", version: VERSION });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  await client.connect(clientSide);
  const instructions = client.getInstructions();
  const result = {
    capabilities: client.getServerCapabilities(),
    serverInfo: client.getServerVersion(),
    ...(instructions ? { instructions } : {}),
  };
  await client.close();
  await server.close();
  return { protocol_versions: [...SUPPORTED_PROTOCOL_VERSIONS], result };
}

/** One object for every ask: the SDK's validator compiles a schema per object it is given, and keeps it. */
const APPROVAL_SCHEMA = { type: "object" as const, properties: { approve: { type: "boolean" as const, title: "Schedule this job", default: true } } };

/**
 * One MCP server per client session, all over one shared API. Its events become
 * resource updates (for subscribed URIs), list changes, and logging messages.
 */
export function createServer(api: CronApi): McpServer {
  const validator = new LazyAjvValidator();
  const server = new McpServer(
    { name: SERVER_NAME, version: SERVER_VERSION, title: "agent-cron" },
    {
      capabilities: { resources: { subscribe: true, listChanged: true }, logging: {}, tools: { listChanged: false } },
      instructions: INSTRUCTIONS,
      jsonSchemaValidator: validator,
    },
  );
  const subscriptions = new Set<string>();
  const send = (p: Promise<void>) => void p.catch(() => {});
  const log = (level: LoggingLevel, data: unknown) => {
    if (server.isConnected()) send(server.sendLoggingMessage({ level, logger: "agent-cron", data }));
  };

  const ctx: ToolContext = {
    api,
    clientName: () => {
      const c = server.server.getClientVersion();
      return c ? `${c.name}/${c.version}` : "unknown";
    },
    log: (level, message) => log(level, message),
    // The Host knows (owner.json); a bare API (tests) does not.
    where: () => (api as { residence?: () => Residence }).residence?.() ?? null,
    confirm: async (message) => {
      if (!server.server.getClientCapabilities()?.elicitation) return "unsupported";
      await validator.prepare();
      let answer;
      try {
        answer = await server.server.elicitInput(
          { message, requestedSchema: APPROVAL_SCHEMA },
          // A person reads and decides: give them time.
          { timeout: 10 * 60_000 },
        );
      } catch {
        // No answer (timed out, or the client failed to ask): nobody said no.
        return "cancel";
      }
      if (answer.action !== "accept") return answer.action;
      return answer.content?.approve === false ? "decline" : "accept";
    },
  };
  registerTools(server, ctx, loadTools, preparedTools());
  registerResources(server, api);

  server.server.setRequestHandler(SubscribeRequestSchema, async ({ params }) => {
    subscriptions.add(params.uri);
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, async ({ params }) => {
    subscriptions.delete(params.uri);
    return {};
  });

  // One change touches a URI several times (a run start writes the run and its job); a
  // subscriber gets one notifications/resources/updated per URI for it, sent after the burst.
  // Likewise one list_changed per burst: a fleet firing adds a run a job (issue 27: a 1,000-job
  // fleet sent one per occurrence, thousands a second, each telling the client the same thing).
  const pending = new Set<string>();
  let listDirty = false;
  let flushing = false;
  const flush = () => {
    flushing = false;
    if (listDirty && server.isConnected()) server.sendResourceListChanged();
    listDirty = false;
    for (const uri of pending) if (server.isConnected()) send(server.server.sendResourceUpdated({ uri }));
    pending.clear();
  };
  const afterBurst = () => {
    if (flushing) return;
    flushing = true;
    setImmediate(flush);
  };
  const updated = (uri: string) => {
    if (!subscriptions.has(uri)) return;
    pending.add(uri);
    afterBurst();
  };
  const listChanged = () => {
    listDirty = true;
    afterBurst();
  };

  const onJob = (job: Job, change: JobChange) => {
    updated(`cron://jobs/${job.id}`);
    updated("cron://jobs");
    if (change !== "updated") listChanged();
  };
  const onRun = (run: Run, change: RunChange, job: Job | undefined) => {
    updated(`cron://runs/${run.id}`);
    updated(`cron://jobs/${run.job_id}`);
    if (change === "started" || run.started_at === run.finished_at) listChanged();
    const failed = run.status !== "completed" && run.status !== "running";
    log(failed ? "warning" : "info", {
      event: `run.${change}`,
      job_id: run.job_id,
      job_name: job?.name ?? null,
      run_id: run.id,
      status: run.status,
      scheduled_for: run.scheduled_for,
      error: run.error,
      uri: `cron://runs/${run.id}`,
    });
  };
  const onNotice = (level: "info" | "warning" | "error", message: string, data: Record<string, unknown>) => log(level, { message, ...data });

  api.events.on("job", onJob);
  api.events.on("run", onRun);
  api.events.on("notice", onNotice);
  const previousOnClose = server.server.onclose;
  server.server.onclose = () => {
    api.events.off("job", onJob);
    api.events.off("run", onRun);
    api.events.off("notice", onNotice);
    subscriptions.clear();
    previousOnClose?.();
  };
  return server;
}
