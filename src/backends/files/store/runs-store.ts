import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  closeSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { LockLostError, UserError, errorMessage, unfenced, type Fence } from "../../../kernel/errors.js";
import { RunSchema, type Run } from "../../../core/jobs.js";
import { STORED, type PutOutcome } from "../../../core/ports.js";
import { parseNamed, readDataFile } from "./json-file.js";
import { syncError, writeError } from "./jobs-store.js";
import { writeAll } from "./sync.js";
import { JOURNAL_PREFIX, RunJournal, syncPath } from "./run-journal.js";
import { OPEN_RUNS_FILE, OpenRuns } from "./open-runs.js";
import { RunOrder } from "./run-order.js";
import { formatRunLog, headerLine, putLine, replayRunLog, RUN_LOG_SUFFIX } from "./run-log.js";
import { logger } from "../../../log.js";
import { monotonicMs } from "../../../kernel/time.js";

/** One job's history: its log on disk and, once read, its runs in memory. */
interface JobLog {
  readonly jobId: string;
  readonly file: string;
  /** Oldest first; null until the log is read. */
  runs: Run[] | null;
  /** Size of the log up to its last whole line. */
  bytes: number;
  /** Entries in the log (after its header). */
  lines: number;
  /** A torn last line that could not be cut off at load: cut before the next append. */
  torn: boolean;
  /** Set while a compaction runs: the lines appended meanwhile, to carry over. */
  tail: string[] | null;
  /** Compact once the log holds more entries than this. */
  compactAt: number;
  /** Why the log could not be read; reads and writes that need it fail with this sentence. */
  error: UserError | null;
  removed: boolean;
}

/** A put made in memory, waiting for its line to be written (see RunStore.flush). */
interface PendingPut {
  log: JobLog;
  run: Run;
  line: string;
  dropped: Run[];
  undo: () => void;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The logs start-up did not need are read this long after it, so that reading them never
 * delays a server's first answers (a call that needs one earlier reads it at once)...
 */
const WARM_DELAY_MS = 1000;
/** ...in slices this long, so that timers and calls are not held up. */
const WARM_SLICE_MS = 5;

/**
 * Run history: one append-only log per job (`runs/<job_id>.jsonl`, see run-log.ts), capped at
 * `runs_per_job`, so recording a run costs one appended line however many jobs and runs exist.
 * Whole outputs live in `outputs/<run_id>`; records carry only the first 4 KiB.
 *
 * Start-up reads only the logs of runs that `runs/open.jsonl` lists (left running, or with a
 * delivery pending); every other log is read in the background in short slices, or at once by
 * the first call that needs it. A log that does not parse is left untouched and named in the
 * error of every call that needs it. Logs are compacted in the background once they hold more
 * than twice the cap. Data dirs from before the logs (`runs/<job_id>.json`) are read and
 * converted at the first start.
 */
export class RunStore {
  private readonly logs = new Map<string, JobLog>();
  /** Runs of the logs read so far. */
  private readonly byId = new Map<string, Run>();
  /** Logs not yet read. */
  private unread = 0;
  /** Every run in time order, for `recent`; built once every log is read. */
  private order: RunOrder | null = null;
  private readonly open: OpenRuns;
  private readonly runsDir: string;
  readonly outputsDir: string;
  /** Default work dirs (`<workRoot>/<run_id>`, a persistent job's `<workRoot>/<job_id>`): removed with their run or job. */
  readonly workRoot: string;
  /** Where default work dirs were kept before they moved out of the data dir. */
  private readonly legacyWorkRoot: string;
  private readonly fence: Fence;
  private readonly onProblem: (message: string) => void;
  /** Compactions and removals of evicted runs' files under way. */
  private readonly background = new Set<Promise<void>>();
  private warmTimer: NodeJS.Timeout | null = null;
  /** Puts not yet written: written together once the synchronous work that made them is done. */
  private batch: PendingPut[] | null = null;
  /** Logs the background reading has yet to read. */
  private warmQueue: JobLog[] = [];
  private warmed: { promise: Promise<void>; resolve: () => void } | null = null;
  private closed = false;
  private readonly durability: "fsync" | "os";
  /** Durability "fsync": the one journal whose sync acknowledges every log's lines (run-journal.ts). */
  private readonly journal: RunJournal | null;
  /** Compactions under way, which a journal checkpoint waits for. */
  private readonly rewrites = new Set<Promise<void>>();

  constructor(
    dataDir: string,
    private readonly runsPerJob: number,
    opts: {
      fence?: Fence;
      workRoot?: string;
      onProblem?: (message: string) => void;
      durability?: "fsync" | "os";
      /** The run journal's size at which its logs are synced and it starts afresh (run-journal.ts). */
      checkpointBytes?: number;
    } = {},
  ) {
    this.durability = opts.durability ?? "fsync";
    this.runsDir = path.join(dataDir, "runs");
    this.outputsDir = path.join(dataDir, "outputs");
    this.legacyWorkRoot = path.join(dataDir, "work");
    this.workRoot = opts.workRoot ?? this.legacyWorkRoot;
    this.fence = opts.fence ?? unfenced;
    // Found after start-up, so nothing stops: the operator reads it where the server logs.
    this.onProblem = opts.onProblem ?? ((message) => logger.log("error", "store", message));
    this.open = new OpenRuns(path.join(this.runsDir, OPEN_RUNS_FILE));
    mkdirSync(this.runsDir, { recursive: true });
    mkdirSync(this.outputsDir, { recursive: true });
    this.journal = this.durability === "fsync" ? new RunJournal(this.runsDir, this.onProblem, () => [...this.rewrites], opts.checkpointBytes) : null;
  }

  /**
   * Finds every job's log and reads those that start-up needs (see the class comment); a file
   * among those that does not parse stops start-up, untouched. Then reads the rest in the
   * background unless `background` is false.
   */
  load(opts: { background?: boolean } = {}): void {
    this.fence();
    // Before the logs are listed: a replay may make a log that was not yet on disk.
    const leftovers = this.journal?.readLeftovers() ?? null;
    if (leftovers) for (const [jobId, replay] of leftovers.byJob) this.replayInto(jobId, replay.lines);
    const legacy: string[] = [];
    for (const name of readdirSync(this.runsDir)) {
      if (name.startsWith(".") || name.startsWith(JOURNAL_PREFIX)) continue;
      // A compaction or conversion cut short; the file it was to replace is whole.
      if (name.endsWith(".tmp")) rmSync(path.join(this.runsDir, name), { force: true });
      else if (name === OPEN_RUNS_FILE) continue;
      else if (name.endsWith(RUN_LOG_SUFFIX)) this.addLog(name.slice(0, -RUN_LOG_SUFFIX.length));
      else if (name.endsWith(".json")) legacy.push(name.slice(0, -".json".length));
    }
    const indexed = this.open.load();
    if (indexed && leftovers) {
      // The index is not synced; the journal is: a run it left open is listed.
      const opening = [...leftovers.byJob.values()].flatMap((r) => r.open).filter(([id]) => !this.open.has(id));
      if (opening.length) this.open.markOpen(opening);
    }
    if (legacy.length) this.convertLegacy(legacy, indexed);
    if (!indexed) {
      // No index, or a damaged one: it is rebuilt from every log, so every log must read.
      for (const log of [...this.logs.values()]) this.read(log);
      this.open.rebuild([...this.byId.values()].filter(isOpen).map((r) => [r.id, r.job_id] as [string, string]));
    } else {
      for (const jobId of this.open.jobIds()) {
        const log = this.logs.get(jobId);
        if (log) this.read(log);
      }
      const stale = [...this.open.entries()].filter(([id]) => {
        const run = this.byId.get(id);
        return !run || !isOpen(run);
      });
      if (stale.length) this.open.forget(stale.map(([id]) => id));
    }
    if (leftovers)
      this.journal!.checkpointLeftovers(
        leftovers.files,
        [...leftovers.byJob.keys()].map((jobId) => this.logPath(jobId)),
      );
    if (opts.background !== false) this.warmUp();
  }

  /**
   * Appends to a job's log the journaled lines it does not end with (a crash took them before
   * they reached the disk). A log line is a whole record: one the log holds already changes
   * nothing when replayed again, so a log rewritten since (compacted) simply gets them all.
   */
  private replayInto(jobId: string, lines: string[]): void {
    const file = this.logPath(jobId);
    const want = lines.join("");
    let size = 0;
    let tail = "";
    try {
      const fd = openSync(file, "r+");
      try {
        size = fstatSync(fd).size;
        // Only the end of the log can hold these lines: read no more than they take, and a line before.
        const n = Math.min(size, Buffer.byteLength(want) + 64 * 1024);
        const buf = Buffer.alloc(n);
        let off = 0;
        while (off < n) {
          const got = readSync(fd, buf, off, n - off, size - n + off);
          if (got === 0) break;
          off += got;
        }
        tail = buf.subarray(0, off).toString("utf8");
        // A torn last line (cut by the crash) is dropped before anything is appended after it.
        const end = tail.lastIndexOf("\n") + 1;
        if (end < tail.length) {
          const cut = Buffer.byteLength(tail.slice(end));
          ftruncateSync(fd, size - cut);
          size -= cut;
          tail = tail.slice(0, end);
        }
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw writeError(file, err);
    }
    // All there (a stop, or a crash that the page cache survived; lines after them were added by hand): nothing to do.
    if (tail.includes(want)) return;
    let have = 0;
    for (let i = lines.length - 1; i > 0 && !have; i--) if (tail.endsWith(lines.slice(0, i).join(""))) have = i;
    const missing = lines.slice(have).join("");
    try {
      appendFileSync(file, size === 0 ? headerLine(jobId) + missing : missing);
    } catch (err) {
      throw writeError(file, err);
    }
  }

  private logPath(jobId: string): string {
    // Not path.join: start-up makes one per log, and the parts need no normalising.
    return `${this.runsDir}${path.sep}${jobId}${RUN_LOG_SUFFIX}`;
  }

  /** Resolves once every log is read (at once when none is left). */
  whenLoaded(): Promise<void> {
    if (this.unread === 0 || this.closed) return Promise.resolve();
    if (!this.warmed) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.warmed = { promise, resolve };
    }
    // Someone waits: read now, and keep the process alive meanwhile (it does not otherwise).
    this.warmQueue = [...this.logs.values()].filter((l) => l.runs === null && !l.error);
    this.scheduleSlice(0);
    return this.warmed.promise;
  }

  get(id: string): Run | undefined {
    const run = this.byId.get(id);
    if (run || this.unread === 0) return run;
    this.loadAll();
    return this.byId.get(id);
  }

  /** A job's runs, oldest first. */
  ofJob(jobId: string): readonly Run[] {
    const log = this.logs.get(jobId);
    return log ? this.read(log) : [];
  }

  jobIds(): IterableIterator<string> {
    return this.logs.keys();
  }

  *all(): IterableIterator<Run> {
    this.loadAll();
    for (const log of [...this.logs.values()]) yield* log.runs ?? [];
  }

  /** Runs left `running` (at start-up: by a process that is gone), without reading every log. */
  running(): Run[] {
    return this.listed((r) => r.status === "running");
  }

  /** Runs whose delivery is still `pending`, without reading every log. */
  pendingDelivery(): Run[] {
    return this.listed((r) => r.delivery === "pending");
  }

  /**
   * Runs across every job, newest first (by started_at, else scheduled_for; ties by id
   * descending), a page at a time: the `limit` runs that `filter` accepts after the run
   * `after` (exclusive), or from the newest. Read from an index kept in order as runs come
   * and go, so no call sorts the history.
   */
  recent(opts: { limit: number; after?: string; filter?: (run: Run) => boolean }): { items: Run[]; more: boolean; found: boolean } {
    const order = this.ordered();
    let after: Run | undefined;
    if (opts.after !== undefined) {
      after = this.byId.get(opts.after);
      if (!after) return { items: [], more: false, found: false };
    }
    return order.page(opts.limit, after, opts.filter);
  }

  /** This store has one writer (the data dir's owner): a run not in its job's log is new. */
  async putNew(run: Run): Promise<boolean> {
    if (this.ofJob(run.job_id).some((r) => r.id === run.id)) return false;
    await this.put(run);
    return true;
  }

  /**
   * Adds or replaces a run with one appended line; resolves once it is written. Memory
   * changes at once; the puts made in one stretch of synchronous work (a fleet's runs
   * starting together) are written together right after it, with one fence check and one
   * write per log. If the disk refuses a log's lines, its puts are undone, so memory stays as
   * the files say, and each rejects with what happened.
   */
  put(run: Run): Promise<PutOutcome> {
    let log: JobLog;
    let runs: Run[];
    try {
      log = this.logs.get(run.job_id) ?? this.addLog(run.job_id, []);
      runs = this.read(log);
    } catch (err) {
      return Promise.reject(err);
    }
    const known = this.byId.get(run.id);
    const at = known ? runs.indexOf(known) : -1;
    if (at >= 0) runs[at] = run;
    else runs.push(run);
    this.byId.set(run.id, run);
    const evicted = runs.length > this.runsPerJob ? this.evictOldest(runs) : [];
    const dropped = evicted.map((e) => e.run);
    if (this.order) {
      if (at >= 0) this.order.replace(known!, run);
      else this.order.insert(run);
      for (const r of dropped) this.order.remove(r);
    }
    const undo = () => {
      // Evicted runs back where they were, then the run as it was.
      for (const e of evicted) runs.splice(e.index, 0, e.run);
      if (at >= 0) runs[at] = known!;
      else runs.pop();
      if (known) this.byId.set(run.id, known);
      else this.byId.delete(run.id);
      for (const r of dropped) this.byId.set(r.id, r);
      if (this.order) {
        if (at >= 0) this.order.replace(run, known!);
        else this.order.remove(run);
        for (const r of dropped) this.order.insert(r);
      }
    };
    return new Promise<void>((resolve, reject) => {
      if (!this.batch) {
        this.batch = [];
        queueMicrotask(() => this.flush());
      }
      this.batch.push({
        log,
        run,
        line: putLine(
          run,
          dropped.map((r) => r.id),
        ),
        dropped,
        undo,
        resolve,
        reject,
      });
    }).then(() => STORED);
  }

  /**
   * Changes the copy held in memory and appends it: this process is the only writer, and the
   * change is applied before the first await, so two updates never see the same copy.
   */
  async update(id: string, change: (run: Run) => Run | null): Promise<Run | undefined> {
    const current = this.get(id);
    if (!current) return undefined;
    const next = change(current);
    if (!next) return current;
    await this.put(next);
    return next;
  }

  /** Writes the puts made since the last flush: the runs they open, then each log's lines. */
  private flush(): void {
    const batch = this.batch ?? [];
    this.batch = null;
    try {
      this.write(batch);
    } catch (err) {
      // Not expected (each step catches its own); no put may wait for ever.
      for (const p of batch) p.reject(err);
    }
  }

  private write(batch: PendingPut[]): void {
    const failed = (puts: PendingPut[], err: unknown) => {
      for (let i = puts.length - 1; i >= 0; i--) puts[i].undo();
      const why = err instanceof LockLostError || err instanceof UserError ? err : writeError(puts[0].log.file, err);
      for (const p of puts) p.reject(why);
    };
    const live = batch.filter((p) => !p.log.removed);
    try {
      this.fence();
      // Listed first: the index may say too much, never too little (see open-runs.ts).
      const opening = new Map<string, string>();
      for (const p of live) if (isOpen(p.run) && !this.open.has(p.run.id)) opening.set(p.run.id, p.run.job_id);
      this.open.markOpen([...opening]);
    } catch (err) {
      return failed(batch, err);
    }
    const byLog = new Map<JobLog, PendingPut[]>();
    for (const p of live) byLog.set(p.log, [...(byLog.get(p.log) ?? []), p]);
    let written: PendingPut[] = [];
    /** Each log as it was before this batch, to undo its lines if the journal refuses them. */
    const before = new Map<JobLog, { bytes: number; lines: number; tail: number }>();
    for (const [log, puts] of byLog) {
      const was = { bytes: log.bytes, lines: log.lines, tail: log.tail?.length ?? 0 };
      try {
        this.append(log, puts.map((p) => p.line).join(""), puts.length);
      } catch (err) {
        failed(puts, err);
        continue;
      }
      before.set(log, was);
      written.push(...puts);
    }
    if (this.journal && written.length) {
      // Memory and the logs agree from here; the acknowledgement waits for the journal's sync.
      let synced: Promise<void>;
      try {
        synced = this.journal.append(written.map((p) => ({ jobId: p.log.jobId, file: p.log.file, line: p.line })));
        for (const p of written) {
          const { resolve, reject } = p;
          p.resolve = () => void synced.then(resolve, (err) => reject(syncError(path.join(this.runsDir, "journal"), err)));
        }
      } catch (err) {
        for (const [log, was] of before) {
          try {
            truncateSync(log.file, was.bytes);
          } catch {
            log.torn = true;
          }
          log.bytes = was.bytes;
          log.lines = was.lines;
          if (log.tail) log.tail.length = was.tail;
        }
        failed(written, writeError(path.join(this.runsDir, "journal"), err));
        written = [];
      }
    }
    for (const log of before.keys()) if (!log.tail && log.lines > log.compactAt) this.compact(log);
    const closes: string[] = [];
    for (const p of written) {
      for (const r of p.dropped) if (this.open.has(r.id)) closes.push(r.id);
      if (!isOpen(p.run) && this.open.has(p.run.id)) closes.push(p.run.id);
    }
    if (closes.length) this.open.markClosed(closes);
    const gone = written.flatMap((p) => p.dropped);
    if (gone.length) this.inBackground(Promise.all(gone.map((r) => this.removeFilesOf(r))).then(() => {}));
    for (const p of written) p.resolve();
    // A put for a job removed meanwhile went with its job.
    for (const p of batch) if (p.log.removed) p.resolve();
  }

  /** Keeps the newest `runs_per_job`, never evicting a run still going; says where each evicted run was. */
  private evictOldest(runs: Run[]): { run: Run; index: number }[] {
    const evicted: { run: Run; index: number }[] = [];
    for (let i = 0; i < runs.length && runs.length - evicted.length > this.runsPerJob; i++) {
      if (runs[i].status !== "running") evicted.push({ run: runs[i], index: i });
    }
    // Usually the oldest runs, in one piece at the front.
    if (evicted.length && evicted[evicted.length - 1].index === evicted.length - 1) runs.splice(0, evicted.length);
    else {
      let w = 0;
      let next = 0;
      for (let i = 0; i < runs.length; i++) {
        if (next < evicted.length && evicted[next].index === i) next++;
        else runs[w++] = runs[i];
      }
      runs.length = w;
    }
    for (const e of evicted) this.byId.delete(e.run.id);
    return evicted;
  }

  async removeJob(jobId: string): Promise<void> {
    this.fence();
    const log = this.logs.get(jobId);
    let runs: Run[] = [];
    if (log) {
      try {
        runs = this.read(log);
      } catch {
        // A log that does not parse goes with its job; its runs' outputs cannot be named.
      }
      log.removed = true;
      this.logs.delete(jobId);
      if (log.runs === null && !log.error) this.settle();
    }
    for (const r of runs) this.byId.delete(r.id);
    const ids = new Set(runs.map((r) => r.id));
    this.order?.removeWhere((r) => ids.has(r.id));
    this.open.forget(ids);
    // At once: a put that comes after this (a run of the job ending late) starts a new log
    // that a later unlink must not take.
    rmSync(path.join(this.runsDir, `${jobId}${RUN_LOG_SUFFIX}`), { force: true });
    // A replay after a crash must not bring the history back.
    await this.journal?.removed(jobId).catch((err) => this.onProblem(`Job ${jobId}: its removal could not be journaled (${errorMessage(err)})`));
    await Promise.all(runs.map((r) => this.removeFilesOf(r)));
    for (const root of this.workRoots()) await rm(path.join(root, jobId), { recursive: true, force: true });
  }

  async writeOutput(runId: string, output: string, raw?: string): Promise<void> {
    this.fence();
    await writeFile(path.join(this.outputsDir, runId), output);
    if (raw !== undefined && raw !== output) await writeFile(path.join(this.outputsDir, `${runId}.raw`), raw);
  }

  async readOutput(runId: string): Promise<string | null> {
    try {
      return await readFile(path.join(this.outputsDir, runId), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Resolves when background work started so far (compactions, removing evicted runs' files) is done. */
  async idle(): Promise<void> {
    while (this.background.size) await Promise.all([...this.background]);
    await this.journal?.idle();
  }

  /** Stops reading logs in the background and waits for compactions under way. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.warmTimer) clearTimeout(this.warmTimer);
    this.warmTimer = null;
    this.warmed?.resolve();
    // Its lines are in the logs; a checkpoint under way stops, and the next start replays what is left.
    this.journal?.close();
    await this.idle();
    this.open.flush();
  }

  // Reading logs.

  private addLog(jobId: string, runs: Run[] | null = null): JobLog {
    const log: JobLog = {
      jobId,
      file: this.logPath(jobId),
      runs,
      bytes: 0,
      lines: 0,
      torn: false,
      tail: null,
      compactAt: this.compactThreshold(),
      error: null,
      removed: false,
    };
    this.logs.set(jobId, log);
    if (runs === null) this.unread++;
    return log;
  }

  /** A log's runs, reading it first if need be; throws the sentence naming it if it does not parse. */
  private read(log: JobLog): Run[] {
    if (log.runs) return log.runs;
    if (log.error) throw log.error;
    let replayed;
    try {
      let text = "";
      try {
        text = readDataFile(log.file);
      } catch (err) {
        // Gone meanwhile (removed by hand): an empty history, as for a new job.
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
      replayed = replayRunLog(log.file, log.jobId, text);
    } catch (err) {
      // Remembered: the file is left as it is, and named by every call that needs it.
      const problem =
        err instanceof UserError ? err : new UserError(`Data file ${log.file} could not be read (${(err as Error).message}). It was left untouched.`);
      log.error = problem;
      this.settle();
      this.onProblem(problem.message);
      throw problem;
    }
    if (replayed.torn) {
      try {
        truncateSync(log.file, replayed.bytes);
      } catch {
        log.torn = true;
      }
    }
    log.bytes = replayed.bytes;
    log.lines = replayed.lines;
    log.runs = replayed.runs;
    for (const run of replayed.runs) this.byId.set(run.id, run);
    this.settle();
    return log.runs;
  }

  /** One more log is read (or found unreadable). */
  private settle(): void {
    this.unread--;
    if (this.unread === 0) {
      this.warmed?.resolve();
      this.warmed = null;
    }
  }

  /**
   * Reads every log not read yet. One that does not parse (or cannot be read) is left out of the answers that
   * span jobs (reported once through onProblem); its own job's reads and writes name it.
   */
  private loadAll(): void {
    if (this.unread === 0) return;
    for (const log of [...this.logs.values()]) {
      if (log.runs || log.error) continue;
      try {
        this.read(log);
      } catch {
        // See above.
      }
    }
  }

  /** Reads the logs not read yet in the background, a slice at a time, after WARM_DELAY_MS. */
  private warmUp(): void {
    if (this.unread === 0 || this.closed) return;
    this.warmQueue = [...this.logs.values()].filter((l) => l.runs === null && !l.error);
    this.scheduleSlice(WARM_DELAY_MS);
  }

  private scheduleSlice(ms: number): void {
    if (this.warmTimer) clearTimeout(this.warmTimer);
    const timer = setTimeout(() => this.warmSlice(), ms);
    // Only a waiter on whenLoaded() keeps the process alive for it.
    this.warmTimer = this.warmed ? timer : timer.unref();
  }

  private warmSlice(): void {
    this.warmTimer = null;
    if (this.closed) return;
    const until = monotonicMs() + WARM_SLICE_MS;
    while (this.warmQueue.length && monotonicMs() < until) {
      const log = this.warmQueue.pop()!;
      if (log.runs || log.error || log.removed) continue;
      try {
        this.read(log);
      } catch {
        // Named by onProblem, and by every call that needs this log.
      }
    }
    if (this.warmQueue.length) this.scheduleSlice(0);
  }

  private ordered(): RunOrder {
    this.loadAll();
    this.order ??= RunOrder.of(this.byId.values());
    return this.order;
  }

  private listed(matches: (run: Run) => boolean): Run[] {
    const out: Run[] = [];
    for (const [id, jobId] of [...this.open.entries()]) {
      const log = this.logs.get(jobId);
      if (!log) continue;
      try {
        this.read(log);
      } catch {
        continue;
      }
      const run = this.byId.get(id);
      if (run && matches(run)) out.push(run);
    }
    return out;
  }

  // Writing logs.

  private compactThreshold(): number {
    return 2 * this.runsPerJob + 16;
  }

  /**
   * Appends a line: open, write, close. (Keeping descriptors open saved ~1 µs an append, and
   * would let appends go on into a file moved or removed by hand instead of failing.)
   */
  private append(log: JobLog, line: string, lines = 1): void {
    const text = log.bytes === 0 ? headerLine(log.jobId) + line : line;
    const size = Buffer.byteLength(text);
    let fd: number | undefined;
    try {
      fd = openSync(log.file, "a");
      if (log.torn) {
        ftruncateSync(fd, log.bytes);
        log.torn = false;
      }
      writeAll(fd, text, size, null);
    } catch (err) {
      // A short write (disk full) must not leave half a line for the next append to follow.
      try {
        if (fd !== undefined) ftruncateSync(fd, log.bytes);
      } catch {
        log.torn = true;
      }
      if (fd !== undefined) closeSync(fd);
      throw writeError(log.file, err);
    }
    closeSync(fd);
    log.bytes += size;
    log.lines += lines;
    log.tail?.push(line);
  }

  /**
   * Rewrites a log from memory without holding up appends: the new file is written beside it
   * in the background, then the lines appended meanwhile are added and it is renamed into
   * place, in one synchronous step that no put can come between. A crash at any point leaves
   * the old log whole (a leftover `.tmp` is removed at the next start).
   */
  private compact(log: JobLog): void {
    const runs = log.runs!;
    const text = formatRunLog(log.jobId, runs);
    const entries = runs.length;
    const tmp = `${log.file}.${randomBytes(4).toString("hex")}.tmp`;
    log.tail = [];
    const done = (async () => {
      try {
        this.fence();
        await writeFile(tmp, text);
        // On disk before it takes the log's place: the journal holds only the recent lines.
        if (this.journal) await syncPath(tmp);
        if (log.removed || this.closed) throw new Error("gone");
        const tail = log.tail!.join("");
        if (tail) appendFileSync(tmp, tail);
        this.fence();
        renameSync(tmp, log.file);
        log.bytes = Buffer.byteLength(text) + Buffer.byteLength(tail);
        log.lines = entries + countLines(tail);
        log.torn = false;
        log.compactAt = this.compactThreshold();
      } catch {
        rmSync(tmp, { force: true });
        // The old log stays whole and takes appends; try again after as many more.
        log.compactAt = log.lines + this.compactThreshold();
      } finally {
        log.tail = null;
      }
      // The lines appended meanwhile; a journal checkpoint waits for this.
      if (this.journal) await syncPath(log.file).catch(() => this.journal!.touched(log.file));
    })();
    this.rewrites.add(done);
    void done.finally(() => this.rewrites.delete(done));
    this.inBackground(done);
  }

  private inBackground(p: Promise<void>): void {
    const tracked = p.catch(() => {}).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  /**
   * Data dirs from before the logs: `runs/<job_id>.json` (a lowdb file). Each is read and
   * checked first (one that does not parse stops start-up, untouched), then written as a log
   * and removed. A log already beside it is a conversion cut short, kept when it holds every
   * run of the old file.
   */
  private convertLegacy(jobIds: string[], indexed: boolean): void {
    const histories = new Map<string, Run[]>();
    for (const jobId of jobIds) {
      const file = path.join(this.runsDir, `${jobId}.json`);
      const runs = readLegacy(file);
      const log = this.logs.get(jobId);
      if (log) {
        const logged = new Set(this.read(log).map((r) => r.id));
        if (!runs.every((r) => logged.has(r.id))) {
          throw new UserError(
            `Data files ${file} and ${log.file} both hold runs of job ${jobId}, and the older ${file} holds runs the log does not. Nothing was changed; keep one of them (move the other aside).`,
          );
        }
        continue;
      }
      histories.set(jobId, runs);
    }
    // Listed before the old files go, so that start-up still finds them (see open-runs.ts).
    if (indexed) this.open.markOpen([...histories.values()].flatMap((runs) => runs.filter(isOpen).map((r) => [r.id, r.job_id] as const)));
    for (const jobId of jobIds) {
      const file = path.join(this.runsDir, `${jobId}.json`);
      const runs = histories.get(jobId);
      if (runs) {
        const log = this.addLog(jobId, runs);
        const text = formatRunLog(jobId, runs);
        const tmp = `${log.file}.tmp`;
        try {
          this.fence();
          writeFileSync(tmp, text);
          renameSync(tmp, log.file);
        } catch (err) {
          if (err instanceof LockLostError) throw err;
          throw writeError(log.file, err);
        }
        log.bytes = Buffer.byteLength(text);
        log.lines = runs.length;
        for (const r of runs) this.byId.set(r.id, r);
      }
      rmSync(file, { force: true });
    }
  }

  // Files of runs.

  /** A run's output files, and its work dir when it is the default one made for it alone. */
  private async removeFilesOf(run: Run): Promise<void> {
    await rm(path.join(this.outputsDir, run.id), { force: true });
    await rm(path.join(this.outputsDir, `${run.id}.raw`), { force: true });
    for (const root of this.workRoots()) {
      const own = path.join(root, run.id);
      if (run.work_dir === own) await rm(own, { recursive: true, force: true });
    }
  }

  private workRoots(): string[] {
    return this.workRoot === this.legacyWorkRoot ? [this.workRoot] : [this.workRoot, this.legacyWorkRoot];
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) n++;
  return n;
}

/** Left for start-up to act on: still running, or owing a delivery. */
function isOpen(run: Run): boolean {
  return run.status === "running" || run.delivery === "pending";
}

/** A history file from before the logs; one that does not parse stops start-up with its name. */
function readLegacy(file: string): Run[] {
  const data = parseNamed(file, readFileSync(file, "utf8"));
  if (!Array.isArray(data.runs)) throw new UserError(`Data file ${file} has no "runs" array. It was left untouched; move it aside to start afresh.`);
  return data.runs.map((raw, i) => {
    const parsed = RunSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UserError(
        `Data file ${file} (run #${i + 1}) holds an invalid run (${issue.path.join(".")}: ${issue.message}). It was left untouched; fix or remove that run.`,
      );
    }
    return parsed.data;
  });
}
