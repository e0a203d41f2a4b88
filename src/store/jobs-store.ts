import { mkdirSync, readFileSync, truncateSync } from "node:fs";
import { appendFile, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { UserError } from "../core/errors.js";
import { JobSchema, type Job } from "../core/jobs.js";
import { parseNamed, recordsFile } from "./json-file.js";
import { WriteQueue } from "./write-queue.js";

type JournalEntry = { put: Job } | { del: string };

const STORE_VERSION = 1;

/**
 * The job set: `jobs.json` (a lowdb snapshot) plus `jobs.journal`, an append-only log of
 * changes since the snapshot. One change appends one line instead of rewriting every job;
 * the journal is folded into the snapshot once it grows past a share of the job count.
 */
export class JobStore {
  private readonly jobs = new Map<string, Job>();
  private readonly names = new Map<string, string>();
  private readonly snapshot;
  private readonly journalPath: string;
  private journalLines = 0;
  private journalBytes = 0;
  private readonly queue: WriteQueue<JournalEntry>;

  private constructor(readonly dir: string) {
    this.snapshot = recordsFile(path.join(dir, "jobs.json"), "jobs");
    this.journalPath = path.join(dir, "jobs.journal");
    this.queue = new WriteQueue((entries) => this.flush(entries));
  }

  static async open(dir: string): Promise<JobStore> {
    mkdirSync(dir, { recursive: true });
    const store = new JobStore(dir);
    await store.load();
    return store;
  }

  private async load(): Promise<void> {
    const file = path.join(this.dir, "jobs.json");
    const data = await this.snapshot.read();
    if (data) {
      if (!Array.isArray(data.jobs)) throw new UserError(`Data file ${file} has no "jobs" array. It was left untouched; move it aside to start afresh.`);
      data.jobs.forEach((raw, i) => this.remember(validJob(raw, `${file} (job #${i + 1})`)));
    }
    this.replayJournal();
  }

  private replayJournal(): void {
    let text: string;
    try {
      text = readFileSync(this.journalPath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    this.journalBytes = Buffer.byteLength(text);
    const lines = text.split("\n");
    // A write cut short by a crash leaves a last line without its newline; it was never
    // acknowledged, so it is dropped rather than treated as corruption.
    const torn = lines.pop();
    if (torn) {
      this.journalBytes -= Buffer.byteLength(torn);
      truncateSync(this.journalPath, this.journalBytes);
    }
    lines.forEach((line, i) => {
      if (!line) return;
      const where = `${this.journalPath} (line ${i + 1})`;
      const entry = parseNamed(where, line) as Partial<{ put: unknown; del: unknown }>;
      if (typeof entry.del === "string") this.forget(entry.del);
      else if (entry.put) this.remember(validJob(entry.put, where));
      else throw new UserError(`Data file ${where} is neither a put nor a del entry. It was left untouched; move it aside to start afresh.`);
      this.journalLines++;
    });
  }

  private remember(job: Job): void {
    const old = this.jobs.get(job.id);
    if (old?.name && old.name !== job.name) this.names.delete(old.name);
    this.jobs.set(job.id, job);
    if (job.name) this.names.set(job.name, job.id);
  }

  private forget(id: string): void {
    const old = this.jobs.get(id);
    if (!old) return;
    if (old.name) this.names.delete(old.name);
    this.jobs.delete(id);
  }

  get size(): number {
    return this.jobs.size;
  }

  all(): IterableIterator<Job> {
    return this.jobs.values();
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  byName(name: string): Job | undefined {
    const id = this.names.get(name);
    return id ? this.jobs.get(id) : undefined;
  }

  /**
   * Stores the job; resolves once the change is on disk. Memory changes at once, so reads
   * see it; if the write fails (disk full, read-only), memory goes back to what the files say.
   */
  put(job: Job): Promise<void> {
    const before = this.jobs.get(job.id);
    this.remember(job);
    return this.queue.push({ put: job }).catch((err) => {
      if (this.jobs.get(job.id) === job) {
        this.forget(job.id);
        if (before) this.remember(before);
      }
      throw writeError(this.journalPath, err);
    });
  }

  delete(id: string): Promise<void> {
    const before = this.jobs.get(id);
    this.forget(id);
    return this.queue.push({ del: id }).catch((err) => {
      if (before && !this.jobs.has(id)) this.remember(before);
      throw writeError(this.journalPath, err);
    });
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  private async flush(entries: JournalEntry[]): Promise<void> {
    const text = entries.map((e) => JSON.stringify(e) + "\n").join("");
    try {
      await appendFile(this.journalPath, text);
    } catch (err) {
      // A short write (disk full) must not leave half a line for the next append to follow.
      await truncate(this.journalPath, this.journalBytes).catch(() => {});
      throw err;
    }
    this.journalBytes += Buffer.byteLength(text);
    this.journalLines += entries.length;
    if (this.journalLines > Math.max(512, this.jobs.size / 4)) {
      // The entries are safe in the journal; a failed compaction is simply tried again later.
      await this.compact().catch(() => {});
    }
  }

  /** Folds the journal into the snapshot. Runs inside the write queue, so no append races it. */
  private async compact(): Promise<void> {
    await this.snapshot.write({ version: STORE_VERSION, jobs: [...this.jobs.values()] });
    // The snapshot holds everything the journal did; a crash before this line only leaves
    // entries that replay to the same state.
    await writeFile(this.journalPath, "");
    this.journalLines = 0;
    this.journalBytes = 0;
  }
}

/** A failed write, worded for the caller: nothing was changed. */
export function writeError(file: string, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === "ENOSPC" ? "the disk is full" : code === "EROFS" || code === "EACCES" || code === "EPERM" ? "the data dir is not writable" : (err as Error).message;
  return new UserError(`Could not save to ${file}: ${why}. Nothing was changed; free space or fix permissions and try again.`);
}

function validJob(raw: unknown, where: string): Job {
  const parsed = JobSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(
      `Data file ${where} holds an invalid job (${issue.path.join(".") || "record"}: ${issue.message}). It was left untouched; fix or remove that job.`,
    );
  }
  return parsed.data;
}
