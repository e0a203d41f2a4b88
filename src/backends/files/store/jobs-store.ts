import { randomBytes } from "node:crypto";
import { existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { UnavailableError, UserError, unfenced, type Fence } from "../../../kernel/errors.js";
import { exactCheck } from "../../../kernel/exact-check.js";
import { JobSchema, type Job } from "../../../core/jobs.js";
import type { JobRepo } from "../../../core/ports.js";
import { checkRegularFile, parseNamed, readRecordLines, recordsFile, writeRecordsInSlices } from "./json-file.js";
import { SyncedFile, writeAll } from "./sync.js";

type JournalEntry = { put: Job } | { del: string };
/**
 * A journal's first line names it, and the one it follows. The snapshot names the journal that
 * holds the changes made since it was written, so a journal that was emptied, deleted or swapped
 * is noticed at start-up instead of silently losing those changes.
 *
 * Revisions count the changes of the job set: the snapshot records the one it holds, a header
 * the one its journal starts from (`from`, a line each after it) and, kept up to date in place,
 * the newest one written to it (`rev`). A journal cut back to its header (or short of what its
 * header or the snapshot records) is noticed the same way.
 */
type JournalHeader = { journal: string; after: string | null; from?: number; rev?: number };

/** Digits kept for the header's `rev`, right-aligned after its key (JSON allows the spaces), so it is rewritten in place. */
const REV_WIDTH = 16;
const REV_KEY = '"rev":';

const STORE_VERSION = 1;

/**
 * The job set: `jobs.json` (a lowdb snapshot) plus `jobs.journal`, an append-only log of
 * changes since the snapshot. One change appends one line instead of rewriting every job.
 *
 * Appends are synchronous writes on a descriptor kept open: a line is a few microseconds of
 * main thread, where an async append costs an open, a write and a close on the thread pool
 * that runs also need. With `durability: "fsync"` the change is acknowledged once a sync
 * that covers its line has finished, so an acknowledged change survives a power cut
 * (test/all/fsync.test.ts watches it with strace); the sync runs off the main thread and is
 * shared by every change written meanwhile (see sync.ts). With `"os"` the line is in the
 * OS's hands when the call returns, which survives a kill -9.
 *
 * Compaction never blocks appends: the journal is renamed to `jobs.journal.old`, a fresh
 * one takes new lines, and the snapshot is written in the background; `.old` is removed once
 * the snapshot is on disk. Start-up replays snapshot, `.old`, then the journal.
 *
 * Each journal starts with a header line naming it, and the snapshot names its journal; a
 * start-up that finds the named journal missing or emptied refuses to start, naming the file.
 */
export class JobStore implements JobRepo {
  private readonly jobs = new Map<string, Job>();
  private readonly names = new Map<string, string>();
  private readonly snapshot;
  private readonly journalPath: string;
  private readonly snapshotPath: string;
  private readonly oldJournalPath: string;
  private file: SyncedFile | null = null;
  private journalLines = 0;
  private journalBytes = 0;
  private compacting: Promise<void> | null = null;
  /** The id in the current journal's header; null until the first compaction of an old data dir. */
  private journalId: string | null = null;
  /** The revision of the job set in memory: one more per journal line. */
  private rev = 0;
  /** Where the current journal's header keeps its `rev` (a byte offset), or null for a header without one. */
  private revAt: number | null = null;
  /** The newest rev written to a header: syncs finish in order, but a rev is never written back. */
  private revWritten = 0;

  private constructor(
    readonly dir: string,
    private readonly fence: Fence,
    /** "fsync": a change is acknowledged once its line is on disk; "os": once the OS has it. */
    private readonly durability: "fsync" | "os",
  ) {
    this.snapshotPath = path.join(dir, "jobs.json");
    this.snapshot = recordsFile(this.snapshotPath, "jobs");
    this.journalPath = path.join(dir, "jobs.journal");
    this.oldJournalPath = `${this.journalPath}.old`;
  }

  static async open(dir: string, fence: Fence = unfenced, durability: "fsync" | "os" = "fsync"): Promise<JobStore> {
    mkdirSync(dir, { recursive: true });
    const store = new JobStore(dir, fence, durability);
    await store.load();
    return store;
  }

  private async load(): Promise<void> {
    const file = path.join(this.dir, "jobs.json");
    // A FIFO or a device would hang the reads below: each data file must be a regular file.
    for (const f of [file, this.oldJournalPath, this.journalPath]) checkRegularFile(f);
    // Job by job, as the store writes them (one a line): at 100,000 jobs, parsing the whole
    // file at once held its text and every raw record at the same time (RSS 375 MB, and most
    // of a restart in the garbage collector). Any other layout (a hand-formatted file) is
    // parsed whole, as before.
    let data = readRecordLines(file, "jobs", (raw, i) => this.remember(validJob(raw, `${file} (job #${i + 1})`)));
    if (data === "other layout") {
      this.jobs.clear();
      this.names.clear();
      data = await this.snapshot.read();
      if (data) {
        if (!Array.isArray(data.jobs)) throw new UserError(`Data file ${file} has no "jobs" array. It was left untouched; move it aside to start afresh.`);
        data.jobs.forEach((raw, i) => this.remember(validJob(raw, `${file} (job #${i + 1})`)));
      }
    }
    const old = this.replay(this.oldJournalPath);
    this.journalLines = 0;
    const current = this.replay(this.journalPath);
    this.journalBytes = current.bytes;
    this.journalId = current.header?.journal ?? null;
    this.revAt = current.revAt;
    const expected = typeof data?.journal === "string" ? data.journal : null;
    const snapshotRev = typeof data?.rev === "number" ? data.rev : null;
    this.checkJournals(data !== null, expected, snapshotRev, old, current);
    this.rev = Math.max(snapshotRev ?? 0, reached(old) ?? 0, reached(current) ?? 0);
    // A compaction cut short before its new journal was made: make it now, following the
    // snapshot's, or the next change would start a journal without a header.
    if (expected !== null && this.journalId === null) this.startJournal(expected);
    // A data dir made before journals had headers or revisions (or a new one) gets them now.
    if (expected === null || this.revAt === null) {
      this.compact();
      await this.compacting;
    }
  }

  /** The snapshot and the journals must belong together; see JournalHeader. */
  private checkJournals(hasSnapshot: boolean, expected: string | null, snapshotRev: number | null, old: Replayed, current: Replayed): void {
    const file = path.join(this.dir, "jobs.json");
    if (!hasSnapshot) {
      // With `.old` present a compaction was under way and its snapshot not yet written.
      if (current.header?.after && !existsSync(this.oldJournalPath)) {
        throw new UserError(
          `Data file ${file} is missing, but ${this.journalPath} holds only the changes made after it was written. Nothing was changed; restore jobs.json from a backup.`,
        );
      }
      return;
    }
    if (expected === null) return;
    const wayOut = `Nothing was changed; restore ${this.journalPath} from a backup, or, to start from jobs.json alone and accept losing those changes, remove the "journal" key from jobs.json.`;
    // A compaction was cut short: `.old` is the snapshot's journal and the new one follows it.
    const named =
      current.header?.journal === expected
        ? current
        : old.header?.journal === expected && (current.bytes === 0 || current.header?.after === expected)
          ? old
          : null;
    if (!named) {
      const what = !existsSync(this.journalPath) ? "is missing" : current.bytes === 0 ? "is empty" : "is not the journal jobs.json was written with";
      throw new UserError(`Data file ${this.journalPath} ${what}: the job changes made since ${file} was written would be lost. ${wayOut}`);
    }
    // Its header (or the snapshot) records more changes than it holds: it was cut back.
    const got = reached(named);
    const want = Math.max(named.header?.rev ?? 0, snapshotRev ?? 0);
    if (got !== null && got < want) {
      const where = named === old ? this.oldJournalPath : this.journalPath;
      const lost = want - got;
      throw new UserError(
        `Data file ${where} was cut back: it holds the job set up to change ${got}, but ${(named.header?.rev ?? 0) >= want ? "its header" : file} records change ${want}, so the last ${lost} change${lost === 1 ? "" : "s"} would be lost. ` +
          wayOut.replace(this.journalPath, where),
      );
    }
  }

  /** Applies a journal file; returns its header, its change lines and its size after dropping a torn last line. */
  private replay(file: string): Replayed {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { bytes: 0, header: null, lines: 0, revAt: null };
      throw err;
    }
    let bytes = Buffer.byteLength(text);
    const lines = text.split("\n");
    // A write cut short by a crash leaves a last line without its newline; it was never
    // acknowledged, so it is dropped rather than treated as corruption.
    const torn = lines.pop();
    if (torn) {
      bytes -= Buffer.byteLength(torn);
      truncateSync(file, bytes);
    }
    let header: JournalHeader | null = null;
    let revAt: number | null = null;
    let changes = 0;
    lines.forEach((line, i) => {
      if (!line) return;
      const where = `${file} (line ${i + 1})`;
      const entry = parseNamed(where, line) as Partial<{ put: unknown; del: unknown; journal: unknown; after: unknown; from: unknown; rev: unknown }>;
      if (i === 0 && typeof entry.journal === "string") {
        header = { journal: entry.journal, after: typeof entry.after === "string" ? entry.after : null };
        if (Number.isSafeInteger(entry.from) && Number.isSafeInteger(entry.rev)) {
          header.from = entry.from as number;
          header.rev = entry.rev as number;
          const key = line.lastIndexOf(REV_KEY);
          if (key >= 0 && line.length - 1 - (key + REV_KEY.length) === REV_WIDTH) revAt = Buffer.byteLength(line.slice(0, key + REV_KEY.length));
        }
        return;
      }
      if (typeof entry.del === "string") this.forget(entry.del);
      else if (entry.put) this.remember(validJob(entry.put, where));
      else throw new UserError(`Data file ${where} is neither a put nor a del entry. It was left untouched; move it aside to start afresh.`);
      this.journalLines++;
      changes++;
    });
    return { bytes, header, lines: changes, revAt };
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
   * Stores the job: on disk when this returns. If the write fails (disk full, read-only),
   * memory stays as the files say and the error says what happened.
   */
  async put(job: Job): Promise<void> {
    const before = this.jobs.get(job.id);
    // Memory first: a compaction started by this append snapshots memory, and must see it.
    this.remember(job);
    let synced: Promise<void> | null;
    try {
      synced = this.append({ put: job });
    } catch (err) {
      this.forget(job.id);
      if (before) this.remember(before);
      throw err;
    }
    await synced;
  }

  /** A new job (see put). */
  insert(job: Job): Promise<void> {
    return this.put(job);
  }

  /**
   * Applies `change` to the job held in memory and stores the result. This process is the
   * only writer, so memory is the newest copy; the change is applied before the first await,
   * so a caller sees it in memory at once (the fleet timer arms the next occurrence from it).
   */
  async update(id: string, change: (job: Job) => Job | null): Promise<{ job: Job; changed: boolean } | undefined> {
    const current = this.jobs.get(id);
    if (!current) return undefined;
    const next = change(current);
    if (!next) return { job: current, changed: false };
    await this.put(next);
    return { job: next, changed: true };
  }

  async delete(id: string): Promise<void> {
    const before = this.jobs.get(id);
    if (!before) return;
    this.forget(id);
    let synced: Promise<void> | null;
    try {
      synced = this.append({ del: id });
    } catch (err) {
      this.remember(before);
      throw err;
    }
    await synced;
  }

  /** Resolves when a background compaction (if any) is done. */
  async idle(): Promise<void> {
    await this.compacting;
  }

  /** Closes the journal's descriptor once the syncs asked of it are done. */
  close(): void {
    this.file?.close();
    this.file = null;
  }

  /**
   * Writes the line at once (memory and the OS agree when this returns); with durability
   * "fsync", returns the sync to wait for before acknowledging the change.
   */
  private append(entry: JournalEntry): Promise<void> | null {
    const line = JSON.stringify(entry) + "\n";
    const size = Buffer.byteLength(line);
    this.fence();
    let file: SyncedFile | null = null;
    try {
      // Not O_APPEND: the header's rev is rewritten in place, and Linux appends every write
      // on an O_APPEND descriptor whatever its position.
      file = this.file ??= new SyncedFile(openSync(this.journalPath, "r+"));
      writeAll(file.fd, line, size, this.journalBytes);
    } catch (err) {
      // A short write (disk full) must not leave half a line for the next append to follow.
      try {
        if (file) ftruncateSync(file.fd, this.journalBytes);
      } catch {
        // The next start-up drops a torn last line anyway.
      }
      throw writeError(this.journalPath, err);
    }
    this.journalBytes += size;
    this.journalLines++;
    const rev = ++this.rev;
    const revAt = this.revAt;
    let synced: Promise<void> | null = null;
    if (this.durability === "fsync") {
      // The header's rev after the line is on disk: a header never records a change its
      // journal may not hold (a power cut loses at most the newest rev, never a line it counts).
      // Asked before a compaction below swaps the journal: this line is in this file.
      synced = file.synced().then(
        () => this.writeRev(file, revAt, rev),
        (err) => Promise.reject(syncError(this.journalPath, err)),
      );
    } else this.writeRev(file, revAt, rev);
    if (!this.compacting && this.journalLines > compactAfterLines(this.jobs.size)) this.compact();
    return synced;
  }

  /** Records `rev` in the header of the journal `file`, unless a newer one is there or the journal was swapped. */
  private writeRev(file: SyncedFile, revAt: number | null, rev: number): void {
    if (revAt === null || file !== this.file || rev <= this.revWritten) return;
    this.revWritten = rev;
    const text = Buffer.from(String(rev).padStart(REV_WIDTH));
    try {
      writeSync(file.fd, text, 0, text.length, revAt);
    } catch {
      // The header may say less than its journal holds, never more; start-up counts the lines.
    }
  }

  /**
   * Folds the journal into the snapshot without holding up appends. If the snapshot cannot
   * be written, `.old` stays and start-up still replays it; the next compaction writes the
   * snapshot again. (A journal that overlaps the snapshot replays harmlessly: each job ends
   * at its last entry, which is its current state.)
   */
  private compact(): void {
    // Otherwise the last snapshot was not written: `.old` stays, this journal goes on, and the
    // snapshot about to be written names it.
    if (!existsSync(this.oldJournalPath)) {
      this.close();
      // A journal that follows a snapshot with jobs in it says so: without that snapshot it
      // is not the whole story (a first journal after an empty start is).
      const after = this.journalId ?? (this.jobs.size > 0 ? "legacy" : null);
      const had = existsSync(this.journalPath);
      try {
        if (had) renameSync(this.journalPath, this.oldJournalPath);
        this.startJournal(after);
      } catch {
        try {
          if (had && !existsSync(this.journalPath)) renameSync(this.oldJournalPath, this.journalPath);
        } catch {
          // Start-up replays `.old` and finds no journal after it: the same state.
        }
        return;
      }
    }
    this.journalLines = 0;
    const jobs = [...this.jobs.values()];
    // In slices (the event loop turns between them), and on disk before `.old` goes with "fsync".
    this.compacting = writeRecordsInSlices(
      this.snapshotPath,
      { version: STORE_VERSION, journal: this.journalId, rev: this.rev, jobs },
      "jobs",
      this.durability === "fsync",
    )
      .then(() => rmSync(this.oldJournalPath, { force: true }))
      .catch(() => {})
      .finally(() => {
        this.compacting = null;
      });
  }

  /** A new, empty journal whose header names it and starts at the current revision; in place at once (temp file + rename). */
  private startJournal(after: string | null): void {
    const id = randomBytes(8).toString("hex");
    const { line, revAt } = journalHeaderLine(id, after, this.rev);
    const tmp = `${this.journalPath}.tmp`;
    writeFileSync(tmp, line);
    renameSync(tmp, this.journalPath);
    this.journalId = id;
    this.journalBytes = Buffer.byteLength(line);
    this.revAt = revAt;
  }
}

/** A journal's header line, starting at revision `from`, and where its `rev` is rewritten (a byte offset). */
export function journalHeaderLine(journal: string, after: string | null, from: number): { line: string; revAt: number } {
  const head = `${JSON.stringify({ journal, after, from }).slice(0, -1)},${REV_KEY}`;
  return { line: `${head}${String(from).padStart(REV_WIDTH)}}\n`, revAt: Buffer.byteLength(head) };
}

type Replayed = { bytes: number; header: JournalHeader | null; lines: number; revAt: number | null };

/** The revision a journal brings the job set to, or null for one without revisions (older data dirs). */
function reached(j: Replayed): number | null {
  return j.header?.from === undefined ? null : j.header.from + j.lines;
}

/**
 * Journal lines before a compaction rewrites jobs.json. A quarter of the job set keeps a
 * restart's replay short at 100,000 jobs. Below that, four lines a job (up to 4,096): an
 * every-second fleet of 1,000 jobs writes ~4,000 lines a second (each occurrence taken,
 * started, finished, its next run), which against the former 512 rebuilt the 1.1 MB snapshot
 * on the main thread eight times a second. A few jobs keep the floor of 512.
 */
export function compactAfterLines(jobs: number): number {
  return Math.max(512, Math.min(jobs * 4, 4096), jobs / 4);
}

/**
 * A sync that failed after its line was written (EIO): the change is in the file and in
 * memory, and replays at the next start, but it cannot be promised to survive a power cut.
 */
export function syncError(file: string, err: unknown): UnavailableError {
  return new UnavailableError(
    `Saved to ${file}, but the disk did not confirm it (${(err as Error).message}); the change may not survive a power cut. Check the disk.`,
    "AC_NOT_CONFIRMED",
  );
}

/** A failed write, worded for the caller: nothing was changed. */
export function writeError(file: string, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === "ENOSPC"
      ? "the disk is full"
      : code === "EROFS" || code === "EACCES" || code === "EPERM"
        ? "the data dir is not writable"
        : (err as Error).message;
  return new UserError(`Could not save to ${file}: ${why}. Nothing was changed; free space or fix permissions and try again.`);
}

/** A job line as this store writes it needs nothing from zod: it is used as parsed (no copy of every field). */
const isExactJob = exactCheck(JobSchema);

function validJob(raw: unknown, where: string): Job {
  if (isExactJob(raw)) return shareStrings(shareLists(raw as Job));
  // Older lines (fields added since get their defaults) and bad ones (named below).
  const parsed = JobSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(
      `Data file ${where} holds an invalid job (${issue.path.join(".") || "record"}: ${issue.message}). It was left untouched; fix or remove that job.`,
    );
  }
  return shareStrings(shareLists(parsed.data));
}

/**
 * Most jobs hold the same short lists (notify_on, deliver_on, deliver_to, requires_mcp: the
 * defaults) and the same empty ones (missed_spans, approvals, notes, backlog_due): one frozen copy each
 * instead of seven arrays a job, ~350 B of every job in memory.
 * Jobs are replaced, never changed in place, so a shared list is never written to.
 */
const sharedLists = new Map<string, readonly string[]>();
const LIST_FIELDS = ["notify_on", "deliver_to", "deliver_on", "requires_mcp"] as const;
/** The list each field got last: the next job's is nearly always the same (a compare, no key). */
const lastShared: Partial<Record<(typeof LIST_FIELDS)[number], readonly string[]>> = {};

/** Lists of records that most jobs hold empty: one frozen empty list for all of them. */
const EMPTY_FIELDS = ["missed_spans", "approvals", "notes", "backlog_due"] as const;
const EMPTY: readonly never[] = Object.freeze([]);

function shareLists(job: Job): Job {
  for (const field of EMPTY_FIELDS) {
    const list = job[field] as readonly unknown[];
    if (list.length === 0 && list !== EMPTY) (job as Record<string, unknown>)[field] = EMPTY;
  }
  for (const field of LIST_FIELDS) {
    const list = job[field] as readonly string[] | undefined;
    if (!Array.isArray(list) || list.length > 8) continue;
    let shared = lastShared[field];
    if (!shared || shared.length !== list.length || list.some((v, i) => v !== shared![i])) {
      const key = `${field}\u0000${list.join("\u0000")}`;
      shared = sharedLists.get(key);
      if (!shared) {
        if (sharedLists.size >= 1024) continue;
        shared = Object.freeze([...list]);
        sharedLists.set(key, shared);
      }
      lastShared[field] = shared;
    }
    (job as Record<string, unknown>)[field] = shared;
  }
  return job;
}

/**
 * Each string a parsed line holds is an object of its own, and at a restart every one of them
 * survives and is copied twice by the young generation's scavenges (at 100,000 jobs the
 * collector was ~40 % of loading jobs.json). Equal strings are made one: within a job, the
 * times a job is born with (`updated_at` until it changes, its first schedule entry's `at`) and
 * the schedule and timezone its schedule entries repeat; across jobs, the fields most jobs
 * share with the job before them. ~90 B of the ~910 B a never-run job holds (issue 27).
 * Strings cannot be changed, so sharing one is invisible to every reader.
 */
const SHARED_STRING_FIELDS = ["timezone", "schedule", "created_by", "executor", "work_dir"] as const;
/** The value each field had in the job before: the next job's is often the same (a compare, no key). */
const lastString: Partial<Record<(typeof SHARED_STRING_FIELDS)[number], string>> = {};

function shareStrings(job: Job): Job {
  const fields = job as Record<string, unknown>;
  for (const field of SHARED_STRING_FIELDS) {
    const value = fields[field];
    if (typeof value !== "string") continue;
    const last = lastString[field];
    if (last === value) fields[field] = last;
    else lastString[field] = value;
  }
  if (job.updated_at === job.created_at) fields.updated_at = job.created_at;
  for (const entry of job.schedule_history) {
    const e = entry as Record<string, unknown>;
    if (entry.at === job.created_at) e.at = job.created_at;
    else if (entry.at === job.updated_at) e.at = job.updated_at;
    if (entry.schedule === job.schedule) e.schedule = job.schedule;
    if (entry.timezone === job.timezone) e.timezone = job.timezone;
  }
  return job;
}
