import type { Config } from "../config.js";
import type { Delivery, Job, Run, RunTrigger, Usage } from "./jobs.js";
import type { CatchUpPlan } from "./planner.js";

/**
 * What the core needs from the world, and nothing about how it is done. The composition root
 * (src/compose.ts) builds one backend (files: a data dir; postgres: a database) and hands its
 * parts to the App. Reads are synchronous on purpose: a backend keeps the jobs and the recent
 * runs in memory (the files backend because it owns them; the postgres backend as a mirror
 * kept current by LISTEN/NOTIFY), so deciding what to run never waits on I/O. Writes resolve
 * once they are durable, and throw when they are not.
 */

/** The jobs. */
export interface JobRepo {
  readonly size: number;
  /** Every job, in the order they were added. */
  all(): IterableIterator<Job>;
  get(id: string): Job | undefined;
  byName(name: string): Job | undefined;
  /** Adds a new job. */
  insert(job: Job): Promise<void>;
  /**
   * Applies `change` to the newest copy of a job and stores the result; `change` returns null
   * to leave the job as it is. With several processes on one store the change is applied to
   * the stored row under a lock (read, change, write in one transaction), so two processes
   * never overwrite each other's change. Resolves to the stored job, or undefined when the
   * job is gone; `changed` is false when `change` returned null.
   */
  update(id: string, change: (job: Job) => Job | null): Promise<{ job: Job; changed: boolean } | undefined>;
  delete(id: string): Promise<void>;
  /** Resolves when writes already started are durable. */
  idle(): Promise<void>;
  close(): void | Promise<void>;
  /**
   * Changes made by other processes (a fleet on one database), called once the mirror holds
   * them; the files backend has one writer and never calls it. `job` is undefined when the
   * job was removed; `previous` is the copy held before (undefined for a new job).
   */
  onExternalChange?(listener: (id: string, job: Job | undefined, previous: Job | undefined) => void): void;
}

/** Run history, capped per job, and the runs' whole outputs. */
export interface RunRepo {
  get(id: string): Run | undefined;
  /** A job's runs, oldest first. */
  ofJob(jobId: string): readonly Run[];
  all(): IterableIterator<Run>;
  /** Runs left `running`, without reading every job's history (start-up needs only these). */
  running?(): Run[];
  /** Runs whose delivery is still `pending`, without reading every job's history. */
  pendingDelivery?(): Run[];
  /**
   * Runs across every job, newest first (by started_at, else scheduled_for), a page at a
   * time: the `limit` runs after the run `after` (exclusive), or from the newest.
   */
  recent(opts: { limit: number; after?: string; filter?: (run: Run) => boolean }): { items: Run[]; more: boolean; found: boolean };
  /**
   * Adds or replaces a run; resolves once it is durable, saying what became of it: stored, or
   * superseded when another process of a fleet took the run over (this one had gone quiet) and
   * its record stands. Throws when the write failed (the record is not stored).
   */
  put(run: Run): Promise<PutOutcome>;
  /**
   * Applies `change` to the newest stored copy of a run and stores the result, atomically:
   * two changes made together (two deliveries of one run ending at once) both land, neither
   * overwrites the other. `change` returns null to leave the run as it is. Resolves to the
   * stored run, or undefined when it is gone.
   */
  update(id: string, change: (run: Run) => Run | null): Promise<Run | undefined>;
  /**
   * Adds a run only if no run has its id (on a shared store, atomically across the fleet);
   * false when one had. How a chained run is started once per upstream run.
   */
  putNew(run: Run): Promise<boolean>;
  removeJob(jobId: string): Promise<void>;
  writeOutput(runId: string, output: string, raw?: string): Promise<void>;
  readOutput(runId: string): Promise<string | null>;
  /** Stops background work (reading, compacting) and waits for writes under way. */
  close?(): Promise<void>;
  /** Runs recorded or changed by other processes. */
  onExternalChange?(listener: (run: Run) => void): void;
}

/** What a run's write did (see RunRepo.put): decided by the store, never guessed from identities. */
export type PutOutcome = { kind: "stored" } | { kind: "superseded"; by: Run };
export const STORED: PutOutcome = Object.freeze({ kind: "stored" });

export interface Occurrence {
  /** Epoch ms of the occurrence; null for manual runs and events. */
  scheduledFor: number | null;
  trigger: RunTrigger;
  /** An event's request body, appended to the prompt under "Event payload:". */
  payload?: string;
  /**
   * A chained run (trigger "after"): the upstream run that started it. Its id is derived from
   * the upstream run's, so that it is recorded once whoever starts it (see chainRunId).
   */
  afterRun?: string;
  runId?: string;
  /** A caught-up occurrence only to be recorded `missed` (a fleet queues those too, so none is lost). */
  missed?: boolean;
  /** One of a catch-up backlog (catch_up: all): it runs whatever overlap says. */
  backlog?: boolean;
}

/**
 * Who runs a scheduled occurrence. Every process of a fleet arms the same occurrences; the
 * queue lets exactly one of them run each. The files backend has one owner, so it takes every
 * occurrence and runs it itself; the postgres backend inserts the occurrence row, marks the
 * job and enqueues the run in one transaction, and a pg-boss worker (in any process) runs it
 * once it moves the row from queued to running.
 */
export interface OccurrenceQueue {
  /**
   * Takes a scheduled occurrence for the fleet: marks it handled on the job
   * (last_scheduled_for, never moved back) and queues its run to start after `delayMs`
   * (jitter). Resolves to the updated job when this call took it, or null when it was taken
   * already (by another process) or the job is gone. Throws when the store cannot be written;
   * nothing is queued then. `nextRunAt`: the job's next_run_at once this one is taken, written
   * with it (see takenFields).
   */
  take(job: Job, occ: Occurrence & { scheduledFor: number; nextRunAt?: string | null }, delayMs: number): Promise<Job | null>;
  /**
   * A fleet's catch-up, taken whole in one transaction (postgres): `plan` is decided on the
   * stored job under its lock; the job's last_scheduled_for moves to the plan's newest and every
   * occurrence of the plan, to run or to record `missed`, is queued like a taken one, so a
   * process that dies mid-catch-up loses none. Resolves to the job and plan when this call took
   * it, null when there was nothing (left) to catch up. Without it the App catches up itself.
   */
  takeCatchUp?(jobId: string, plan: (stored: Job) => CatchUpPlan | null): Promise<{ job: Job; plan: CatchUpPlan } | null>;
  /**
   * overlap queue_one in a fleet: keeps a taken occurrence queued behind the job's run going
   * (here or in another process) in the store, so it survives a crash and is claimed under
   * fleet_max_concurrent when it runs. False when another occurrence already waits (this one is
   * then recorded skipped).
   */
  waitBehind?(jobId: string, occ: Occurrence & { scheduledFor: number }): Promise<boolean>;
  /**
   * fleet_max_concurrent (postgres): resolves once the fleet has room for this run's attempt,
   * to a function that gives the room back. Every kind of run asks (manual, event, chained,
   * caught up, queued); a run whose occurrence this queue claimed holds its room by the claim.
   * Resolves at once when `signal` aborts (the attempt then ends canceled without running).
   */
  fleetSlot?(run: Run, signal: AbortSignal): Promise<() => void>;
  /** Where taken occurrences run; set once by the App before the first take. */
  consume(runner: (jobId: string, occ: Occurrence) => Promise<void>): void;
  /** Stops handing out occurrences (waiting ones are dropped; the store says they were taken). */
  close(): Promise<void>;
}

/**
 * Runs left `running` by a process that is gone (it exited mid-run or was killed). The files
 * backend's owner is the only process, so at open every `running` run is one; the postgres
 * backend finds runs whose process stopped sending heartbeats, and hands each to one process.
 */
export interface OrphanFinder {
  /** Claims the orphaned runs found now; each is returned to one caller only. */
  claimOrphans(): Promise<Run[]>;
  /** How often to look again while running; null: only at start. */
  readonly everyMs: number | null;
  /** The processes of a fleet known alive now (postgres); absent on a store with one owner. */
  liveProcesses?(): number;
  /**
   * Finished runs whose deliveries a process that is gone left pending (killed, or stopped
   * mid-retry), claimed by this one: each id is returned to one caller only, which sends what
   * the run still owes (postgres; absent on a store with one owner, which resends at start).
   */
  claimDeliveries?(): Promise<string[]>;
}

// The executor port: what the dispatcher asks of an executor (src/executors/ implements it).
/** Everything one attempt of a run needs; built by the dispatcher, read by an executor. */
export interface ExecutionRequest {
  runId: string;
  jobId: string;
  /** The agent session for this attempt: fresh per run (isolated) or the job's own (persistent). */
  sessionId: string;
  /** True when `sessionId` already exists and must be resumed (persistent job, not its first run). */
  resume: boolean;
  /**
   * The job's session mode. Optional: without it an executor assumes the session may be
   * resumed later and keeps it (codex runs `--ephemeral` only when this says "isolated").
   */
  session?: "isolated" | "persistent";
  /** ISO time of the occurrence, or "" for manual runs. */
  scheduledFor: string;
  prompt: string;
  /** Absolute, link-resolved, existing directory. */
  workDir: string;
  timeoutMs: number;
  outputFormat: "text" | "json" | "structured";
  outputSchema: Record<string, unknown> | null;
  maxCostUsd: number | null;
  /** Aborted on cancel, `replace` and shutdown; the executor kills its process group at once. */
  signal: AbortSignal;
  /** Where the executor may keep files for this attempt (schemas, raw logs); exists. */
  scratchDir: string;
  /** Cap on captured stdout/stderr bytes each. */
  maxOutputBytes: number;
  /**
   * claude-code: a result that lists permission_denials fails the run (`fail`), or completes
   * with warnings (`warn`). Optional: `fail` when absent.
   */
  onPermissionDenied?: "fail" | "warn";
  /** claude-code: MCP servers that must show `connected` in the init event, or the run fails at once. */
  requiresMcp?: string[];
  /** claude-code, codex: the run's own tools server (agent-cron run-tools), added to the agent's MCP configuration. */
  runTools?: RunToolsServer | null;
}

export interface ExecutionResult {
  /** completed: success. failed / timed_out: retried by the dispatcher. canceled: never retried. */
  status: "completed" | "failed" | "timed_out" | "canceled";
  exitCode: number | null;
  /** One readable sentence (plus the tail of stderr where it helps); null on success. */
  error: string | null;
  /** The agent's answer as text (for structured answers, their JSON text). */
  output: string;
  /** An already-parsed structured answer (claude-code `structured_output`), when the agent gave one. */
  structured?: unknown;
  outputTruncated: boolean;
  usage: Usage | null;
  /** True when trying again cannot help (the program is missing): the run is not retried. */
  permanent?: boolean;
  /** The session the agent reports it used, when it reports one. */
  sessionId?: string | null;
  /** Raw stdout/stderr as captured, kept beside the output for debugging. */
  raw?: string;
  /** What went wrong without failing the run (denied permissions under `warn`). */
  warnings?: string[];
  /** The agent program's version, as it reports it (its init event, or `--version`). */
  version?: string | null;
  /** The signal that ended the process, when one did. */
  signal?: string | null;
  /** Tools the agent called, from its event stream, in the order first called. */
  toolCalls?: { name: string; count: number }[] | null;
  /** Output tokens or turns were reported as none: the agent did nothing (an empty run). */
  noTurn?: boolean;
}

export interface Executor {
  readonly type: string;
  execute(req: ExecutionRequest): Promise<ExecutionResult>;
  /** The program this executor starts, for `doctor` and `add_cron` warnings; null when none. */
  readonly program: string | null;
  /** Why its runs go without the sandbox they would have by default ("sandbox": "auto"), or null. */
  sandboxWarning?: () => Promise<string | null>;
  /** Runs a run's gate check as this executor runs its program (its sandbox, the base environment). */
  runCheck?(argv: string[], req: ExecutionRequest): Promise<CheckProcessResult>;
}

/** How a gate check's program ended (SPEC §21): its exit code decides the occurrence. */
export interface CheckProcessResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  /** The end of stderr, where a failing check says why. */
  stderrTail: string;
  timedOut: boolean;
  canceled: boolean;
  spawnError: string | null;
  sandboxError: string | null;
}

/** The executors the operator configured, by name; tool callers only pick one. */
export interface ExecutorRegistry {
  get(name: string): Executor | undefined;
  names(): string[];
  /** True when `program` is found on the server's PATH (or is a path that exists). */
  programFound(program: string): boolean;
}

/** Delivers finished runs to their channels and webhooks. */
/** What the pipeline hands delivery beside the record, so that nothing is read back: the job as the run left it, and the whole output as saved. */
export interface Delivered {
  job?: Job;
  output?: string;
}

export interface Notifier {
  /**
   * Starts delivering a run that owes something, given its record as just stored (the
   * pipeline's last step; recovery hands what it read); returns at once. Each target's
   * attempts are merged into the stored record through RunRepo.update.
   */
  deliver(run: Run, given?: Delivered): void;
  /** At start-up: what was left undelivered. */
  resumePending(): number;
  /** A new config (config.json edited): channels and webhook settings for the next delivery. */
  applyConfig(config: Config): void;
  /** Sends a notice about a job (an audit found occurrences with no record) to `channels`; resolves to the attempts. */
  alert?(channels: string[], job: Job, title: string, body: string): Promise<Delivery[]>;
  /** Messages link to the dashboard's run page under this URL (null: to cron://runs/<id>). */
  setLinkBase?(url: string | null): void;
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** The MCP server an agent CLI starts for its run's tools: how to start it, with its token. */
export interface RunToolsServer {
  name: string;
  command: string;
  args: string[];
  /** Given to that server only (through the agent CLI's MCP configuration), never to the agent. */
  env: Record<string, string>;
  /**
   * What a sandboxed run must be given to use it: the files that server starts from (the
   * program and its script, kept reachable when they live under a hidden path) and the run's
   * own socket, bound in; nothing else of the server.
   */
  sandbox: { programs: string[]; socket: string };
}

export interface RunToolsHandle {
  server: RunToolsServer;
  /** The run has ended: the channel closes and its token is useless from now on. */
  close(): Promise<void>;
}

/**
 * Tools inside a run (SPEC §21): a channel bound to one run by a one-time token, that takes
 * only the tools named for it and hands each call to `call`.
 */
export interface RunToolsPort {
  open(
    run: { runId: string; jobId: string; dir: string; tools: string[] },
    call: (tool: string, args: Record<string, unknown>) => Promise<Record<string, unknown>>,
  ): Promise<RunToolsHandle>;
}
