import { closeSync, fdatasync, fsyncSync, openSync, readdirSync, readFileSync, rmSync, close as closeFd, open as openFd, writeSync } from "node:fs";
import path from "node:path";
import { UserError } from "../../../kernel/errors.js";
import { SyncedFile } from "./sync.js";
import { wholeLines } from "./run-log.js";

/**
 * One journal for every job's run log, for durability "fsync" (SPEC §18): a run's record is
 * acknowledged once its line is on disk, and one fdatasync of this file covers the lines of
 * every job written before it began. Before, each job's log was synced on its own: a fleet of
 * 1,000 every-second jobs asked for ~2,000 syncs a second (7-10 ms each on a shared disk),
 * which filled libuv's thread pool, so every fs call of the server waited behind them and
 * records were acknowledged seconds late (issue 27). The per-job logs are still written at
 * once (memory and files agree as before), without a sync of their own.
 *
 *   runs/journal-<seq>.jsonl    {"job":"<job id>","put":{…run…},"drop":[…]}   a log line, with its job
 *                               {"job":"<job id>","removed":true}             the job's history removed
 *
 * A checkpoint, once the journal holds CHECKPOINT_BYTES, starts a new journal file and syncs
 * the logs written under the old one (a few at a time, in the background), then removes it.
 * At start-up, journals left behind (a crash, or a stop that did not wait for its checkpoint)
 * are replayed: each job's lines that its log does not end with are appended to it (a log
 * line is a whole record, so replaying one the log already holds changes nothing), and those
 * logs are checkpointed in the background.
 */
export const JOURNAL_PREFIX = "journal-";
const JOURNAL_SUFFIX = ".jsonl";
/** A new journal file, and a checkpoint of the old one, past this size. */
export const CHECKPOINT_BYTES = 32 * 1024 * 1024;
/** Logs synced at once by a checkpoint: the rest of the thread pool stays free for the server's other fs calls. */
const CHECKPOINT_PARALLEL = 2;
/** At most this many logs are synced at close, so that the journal can go. */
const SYNC_AT_CLOSE = 8;

/** One job's lines found in the journals at start-up, in order (the per-job log's own format). */
export interface Replay {
  lines: string[];
  /** Runs whose last journaled state is open (running, or owing a delivery), with their job. */
  open: [string, string][];
}

export class RunJournal {
  private file: SyncedFile | null = null;
  private seq = 0;
  private bytes = 0;
  /** Logs written under the current journal file. */
  private dirty = new Set<string>();
  /** Journal files to remove once their logs are synced (checkpoints under way or owed). */
  private checkpointing: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly dir: string,
    /** Called when a checkpoint fails: the journal is kept, and tried again at the next one. */
    private readonly onProblem: (message: string) => void,
    /** Waited for before a checkpoint removes its journal: rewrites of logs (compactions) under way. */
    private readonly rewrites: () => Promise<unknown>[],
    private readonly checkpointBytes = CHECKPOINT_BYTES,
  ) {}

  /**
   * The journals a previous process left, read and grouped by job (lines after a job's
   * removal only); the files stay until `checkpointLeftovers` has synced the logs they name.
   */
  readLeftovers(): { files: string[]; byJob: Map<string, Replay> } {
    const files = this.journalFiles();
    const byJob = new Map<string, Replay>();
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      for (const [line, lineNo] of wholeLines(text)) {
        let entry: { job?: unknown; put?: { id?: unknown; status?: unknown; delivery?: unknown }; drop?: unknown; removed?: unknown };
        try {
          entry = JSON.parse(line);
        } catch {
          throw new UserError(
            `Data file ${file} (line ${lineNo}) does not parse. It was left untouched; move it aside to start without it (runs acknowledged since the last checkpoint may then be lost).`,
          );
        }
        if (typeof entry.job !== "string") {
          throw new UserError(`Data file ${file} (line ${lineNo}) names no job. It was left untouched; move it aside to start without it.`);
        }
        if (entry.removed === true) {
          byJob.delete(entry.job);
          continue;
        }
        let replay = byJob.get(entry.job);
        if (!replay) byJob.set(entry.job, (replay = { lines: [], open: [] }));
        const { job: _job, ...logEntry } = entry;
        replay.lines.push(`${JSON.stringify(logEntry)}\n`);
      }
      this.seq = Math.max(this.seq, seqOf(file));
    }
    for (const [jobId, replay] of byJob) replay.open = openRuns(jobId, replay.lines);
    return { files, byJob };
  }

  /** Syncs the logs replayed from the leftover journals, then removes those journals (in the background). */
  checkpointLeftovers(files: string[], logs: Iterable<string>): void {
    if (files.length) this.checkpoint(files, new Set(logs));
  }

  /**
   * Appends the lines (each with its job) and resolves once they are on disk; throws at once
   * when the write fails, so that the caller can undo.
   */
  append(entries: { jobId: string; file: string; line: string }[]): Promise<void> {
    if (!this.file) {
      this.seq++;
      this.bytes = 0;
      this.file = new SyncedFile(openSync(this.pathOf(this.seq), "a"));
    }
    let text = "";
    for (const e of entries) {
      // The log line is an object: its job goes in front, with no second encoding of the run.
      text += `{"job":${JSON.stringify(e.jobId)},${e.line.slice(1)}`;
      this.dirty.add(e.file);
    }
    const buf = Buffer.from(text);
    let off = 0;
    while (off < buf.length) off += writeSync(this.file.fd, buf, off);
    this.bytes += buf.length;
    const synced = this.file.synced();
    if (this.bytes > this.checkpointBytes && !this.checkpointing) this.rotate();
    return synced;
  }

  /** A job's history is gone: lines before this one are not replayed. */
  removed(jobId: string): Promise<void> {
    return this.append([{ jobId, file: "", line: `{"removed":true}\n` }]);
  }

  /** A log rewritten in place (compaction): its new file is synced by the next checkpoint. */
  touched(file: string): void {
    if (this.file) this.dirty.add(file);
  }

  /**
   * Stops. A journal that covers only a few logs is removed once they are synced (a light
   * server leaves nothing to replay); a bigger one stays for the next start to replay and
   * checkpoint, since syncing a fleet's logs here could hold the exit for seconds.
   */
  close(): void {
    this.closed = true;
    const file = this.file;
    this.file = null;
    if (!file) return;
    file.close();
    if (this.checkpointing || this.dirty.size > SYNC_AT_CLOSE) return;
    try {
      for (const log of this.dirty) syncPathSync(log);
      syncPathSync(this.dir);
      rmSync(this.pathOf(this.seq), { force: true });
    } catch {
      // Left for the next start to replay.
    }
  }

  /** Resolves when the checkpoint under way (if any) is done. */
  async idle(): Promise<void> {
    while (this.checkpointing) await this.checkpointing;
  }

  private rotate(): void {
    const old = this.file!;
    const file = this.pathOf(this.seq);
    const logs = this.dirty;
    this.file = null;
    this.dirty = new Set();
    // Closed once its last sync is done; the lines written to it are in the logs already.
    old.close();
    this.checkpoint([file], logs);
  }

  private checkpoint(files: string[], logs: Set<string>): void {
    const run = async () => {
      const pending = [...logs].filter(Boolean);
      const worker = async () => {
        for (let file = pending.pop(); file !== undefined && !this.closed; file = pending.pop()) await syncPath(file);
      };
      await Promise.all(Array.from({ length: CHECKPOINT_PARALLEL }, worker));
      if (this.closed) return;
      // A log being rewritten holds lines of this journal in its new file: that file is synced by the rewrite itself.
      await Promise.allSettled(this.rewrites());
      // New logs' names.
      syncPathSync(this.dir);
      for (const f of files) rmSync(f, { force: true });
    };
    const previous = this.checkpointing ?? Promise.resolve();
    const done: Promise<void> = previous
      .then(() => (this.closed ? undefined : run()))
      .catch((err) => this.onProblem(`A checkpoint of the run journal failed (${(err as Error).message}); its journal is kept and replayed at the next start.`))
      .finally(() => {
        if (this.checkpointing === done) this.checkpointing = null;
      });
    this.checkpointing = done;
  }

  private journalFiles(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names
      .filter(
        (n) => n.startsWith(JOURNAL_PREFIX) && n.endsWith(JOURNAL_SUFFIX) && Number.isInteger(Number(n.slice(JOURNAL_PREFIX.length, -JOURNAL_SUFFIX.length))),
      )
      .map((n) => path.join(this.dir, n))
      .sort((a, b) => seqOf(a) - seqOf(b));
  }

  private pathOf(seq: number): string {
    return path.join(this.dir, `${JOURNAL_PREFIX}${seq}${JOURNAL_SUFFIX}`);
  }
}

function seqOf(file: string): number {
  const name = path.basename(file);
  return Number(name.slice(JOURNAL_PREFIX.length, -JOURNAL_SUFFIX.length));
}

/** fdatasync of a file by its name, off the main thread; a file gone meanwhile (its job removed) needs none. */
export function syncPath(file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    openFd(file, "r", (err, fd) => {
      if (err) return err.code === "ENOENT" ? resolve() : reject(err);
      fdatasync(fd, (syncErr) => closeFd(fd, () => (syncErr ? reject(syncErr) : resolve())));
    });
  });
}

/** fsync of a file or directory by its name, on this thread; a file gone meanwhile needs none. */
function syncPathSync(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The runs whose last line in `lines` leaves them open (running, or owing a delivery). */
function openRuns(jobId: string, lines: string[]): [string, string][] {
  const last = new Map<string, boolean>();
  for (const line of lines) {
    const entry = JSON.parse(line) as { put?: { id?: string; status?: string; delivery?: string }; drop?: string[] };
    const run = entry.put;
    if (run?.id) last.set(run.id, run.status === "running" || run.delivery === "pending");
    for (const id of entry.drop ?? []) last.delete(id);
  }
  return [...last].filter(([, open]) => open).map(([id]) => [id, jobId]);
}
