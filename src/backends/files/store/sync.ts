import { close, fdatasync, writeSync } from "node:fs";

/**
 * Group commit for durability "fsync": a change is acknowledged once a sync that began after
 * its line was written has finished. The sync runs on libuv's thread pool, never on the main
 * thread: a synchronous fdatasync per change (7-10 ms each on this project's shared disk) held
 * the event loop for 93 % of a start with 1,000 every-second jobs (issue 27), so timers, tool
 * calls and even `initialize` waited minutes. Lines written while a sync is under way wait for
 * the next one, which then covers all of them: one sync per round, however many changes.
 */
export class SyncedFile {
  /** Waiting for the next round (their lines are written; the current round may predate them). */
  private next: { resolve: () => void; reject: (err: NodeJS.ErrnoException) => void }[] = [];
  private syncing = false;
  private closing = false;

  constructor(readonly fd: number) {}

  /** Resolves once everything written to the file before this call is on disk. */
  synced(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.next.push({ resolve, reject });
      if (!this.syncing) this.round();
    });
  }

  /** Closes the descriptor once the syncs asked for are done (at once when none is). */
  close(): void {
    this.closing = true;
    if (!this.syncing) close(this.fd, () => {});
  }

  private round(): void {
    const waiting = this.next;
    this.next = [];
    this.syncing = true;
    fdatasync(this.fd, (err) => {
      this.syncing = false;
      for (const w of waiting) err ? w.reject(err) : w.resolve();
      if (this.next.length) this.round();
      else if (this.closing) close(this.fd, () => {});
    });
  }
}

/**
 * Writes a string whole, at `position` (null: at the file's offset, as an "a" descriptor
 * appends). Handed to the write as a string, not a Buffer: a Buffer per line drew on Node's
 * 8 KiB pool, whose refills and their collection were ~5 % of the main thread under a fleet
 * of 1,000 every-second jobs (issue 27). A short write (disk full) goes on from a Buffer.
 */
export function writeAll(fd: number, text: string, size: number, position: number | null): void {
  let off = writeSync(fd, text, position, "utf8");
  if (off >= size) return;
  const buf = Buffer.from(text);
  while (off < size) off += writeSync(fd, buf, off, size - off, position === null ? null : position + off);
}
