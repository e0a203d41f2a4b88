import { closeSync, openSync, readSync } from "node:fs";

/**
 * One buffer for every read of a /proc file. /proc files report a size of 0, so readFileSync
 * allocates 64 KiB for each read whatever it holds: the limit watcher reads a few files per
 * process of every run twice a second, and under a fleet of 1,000 every-second jobs those
 * buffers (and the collections they caused) were a tenth of the main thread (issue 27).
 * Everything here is synchronous, so the buffer is never shared between two reads.
 */
const buf = Buffer.allocUnsafe(16 * 1024);

/** A /proc file's text (latin1, as the kernel writes it); throws as readFileSync would. */
export function readProcFile(file: string): string {
  const fd = openSync(file, "r");
  try {
    let text = "";
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return text;
      text += buf.toString("latin1", 0, n);
    }
  } finally {
    closeSync(fd);
  }
}
