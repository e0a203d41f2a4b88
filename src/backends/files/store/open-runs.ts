import { checkRegularFile } from "./json-file.js";
import { closeSync, ftruncateSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { writeError } from "./jobs-store.js";

/**
 * `runs/open.jsonl`: which runs may still need something done at start-up (a run left
 * `running`, a delivery still `pending`), so that start-up reads only those jobs' logs instead
 * of the whole history. One line each time a run opens or closes:
 *
 *   {"open":"<run id>","job":"<job id>"}
 *   {"closed":["<run id>",…]}
 *
 * It only ever says too much, never too little: a run's "open" line is written before the run
 * log line that opens it, its "closed" line after the line that closes it, so a crash between
 * the two leaves an entry that start-up checks against the log and drops. The file is derived
 * from the logs: when it is missing or does not parse, the store reads every log and writes it
 * again. It is rewritten from memory (one line per open run) once it has grown.
 *
 * Writes are not fenced here: the run store checks its fence once before each change that
 * writes this file and a log.
 */
export const OPEN_RUNS_FILE = "open.jsonl";

export class OpenRuns {
  /** run id → job id, in the order they opened. */
  private readonly open = new Map<string, string>();
  private lines = 0;
  private bytes = 0;
  /** Closed since the last write: said with the next "open" (one write instead of two). */
  private closing: string[] = [];

  constructor(private readonly file: string) {}

  /** Reads the file; false when it is missing or damaged (the caller rebuilds it from the logs). */
  load(): boolean {
    let text: string;
    // Not a regular file (a FIFO would hang the read): named, as every data file is.
    checkRegularFile(this.file);
    try {
      text = readFileSync(this.file, "utf8");
    } catch {
      return false;
    }
    const end = text.lastIndexOf("\n") + 1;
    for (const line of text.slice(0, end).split("\n")) {
      if (!line) continue;
      let entry: { open?: unknown; job?: unknown; closed?: unknown };
      try {
        entry = JSON.parse(line);
      } catch {
        return this.reset();
      }
      if (typeof entry.open === "string" && typeof entry.job === "string") this.open.set(entry.open, entry.job);
      else if (Array.isArray(entry.closed)) for (const id of entry.closed) this.open.delete(String(id));
      else return this.reset();
      this.lines++;
    }
    this.bytes = Buffer.byteLength(text) - Buffer.byteLength(text.slice(end));
    // A torn last line (a crash mid-write) was an "open" whose run line never followed, or a
    // "closed" that the logs say anyway: dropping it is safe. The next rewrite removes it.
    if (end < text.length) {
      try {
        this.rewrite();
      } catch {
        // Read-only for now: the first append fails and says so.
      }
    }
    return true;
  }

  private reset(): false {
    this.open.clear();
    this.lines = 0;
    return false;
  }

  has(runId: string): boolean {
    return this.open.has(runId);
  }

  /** Every open run id with its job. */
  entries(): IterableIterator<[string, string]> {
    return this.open.entries();
  }

  jobIds(): Set<string> {
    return new Set(this.open.values());
  }

  /** Writes that runs open (run id, job id), in one write; before the log lines that open them. Throws when the disk refuses. */
  markOpen(runs: readonly (readonly [string, string])[]): void {
    if (!runs.length) return;
    let text = this.closing.length ? JSON.stringify({ closed: this.closing }) + "\n" : "";
    for (const [run, job] of runs) text += JSON.stringify({ open: run, job }) + "\n";
    this.append(text, runs.length + (this.closing.length ? 1 : 0));
    this.closing = [];
    for (const [run, job] of runs) this.open.set(run, job);
  }

  /**
   * Notes that runs closed (after the log lines that close them). Written with the next
   * "open", or once 64 are waiting: until then the file says too much, which only costs
   * start-up a log read per stale entry.
   */
  markClosed(runIds: string[]): void {
    for (const id of runIds) this.open.delete(id);
    this.closing.push(...runIds);
    if (this.closing.length >= 64) this.flush();
    if (this.lines > 2 * this.open.size + 256) {
      try {
        this.rewrite();
      } catch {
        // Appends go on; the next rewrite tries again.
      }
    }
  }

  /** Writes the closed runs not yet written; a failure only leaves them listed. */
  flush(): void {
    if (!this.closing.length) return;
    try {
      this.append(JSON.stringify({ closed: this.closing }) + "\n", 1);
      this.closing = [];
    } catch {
      // See markClosed.
    }
  }

  /** Forgets runs whose job's log is gone (removed with its job); the next rewrite drops them. */
  forget(runIds: Iterable<string>): void {
    for (const id of runIds) this.open.delete(id);
  }

  /** Replaces the file by the runs open now (temp file and rename: never half a file). */
  rebuild(entries: Iterable<[string, string]>): void {
    this.open.clear();
    for (const [run, job] of entries) this.open.set(run, job);
    this.rewrite();
  }

  private rewrite(): void {
    let text = "";
    for (const [run, job] of this.open) text += JSON.stringify({ open: run, job }) + "\n";
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.file);
    // The new file says nothing of the runs closed meanwhile.
    this.closing = [];
    this.lines = this.open.size;
    this.bytes = Buffer.byteLength(text);
  }

  private append(line: string, lines: number): void {
    const buf = Buffer.from(line);
    let fd: number | undefined;
    try {
      fd = openSync(this.file, "a");
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off);
    } catch (err) {
      // A short write (disk full) must not leave half a line for the next append to follow.
      try {
        if (fd !== undefined) ftruncateSync(fd, this.bytes);
      } catch {
        // A torn last line is dropped at start-up anyway.
      }
      throw writeError(this.file, err);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    this.bytes += buf.length;
    this.lines += lines;
  }
}
