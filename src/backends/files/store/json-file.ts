import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { open, rename, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { DataFile } from "lowdb/node";
import { UserError } from "../../../kernel/errors.js";

/**
 * A lowdb data file whose records sit one per line: compact enough to rewrite quickly at
 * 100,000 jobs, still plain JSON a person can read and diff. Writes go through steno (temp
 * file + rename, concurrent writes coalesced), so a kill -9 never leaves half a file.
 */
export function recordsFile(file: string, key: string): DataFile<Record<string, unknown>> {
  return new DataFile<Record<string, unknown>>(file, {
    parse: (text) => parseNamed(file, text),
    stringify: (data) => stringifyRecords(data, key),
  });
}

export function stringifyRecords(data: Record<string, unknown>, key: string): string {
  const records = (data[key] as unknown[]) ?? [];
  const head = Object.entries(data)
    .filter(([k]) => k !== key)
    .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)},`)
    .join("");
  if (records.length === 0) return `{${head}${JSON.stringify(key)}:[]}\n`;
  return `{${head}${JSON.stringify(key)}:[\n${records.map((r) => JSON.stringify(r)).join(",\n")}\n]}\n`;
}

/** Records stringified and written per slice: a slice's text is small, and the event loop turns between slices. */
const RECORDS_PER_SLICE = 1000;

/**
 * Writes `data` as stringifyRecords lays it out (byte for byte), a slice of records at a time,
 * to a temporary file that then takes the file's place; with `sync`, the temporary file is on
 * disk before it does. For the job store's compaction at 100,000 jobs: stringifying the whole
 * snapshot at once held the main thread ~4 s (and a 130 MB string), so an add_cron that
 * started a compaction waited that long, and every call behind it. The records must not be
 * changed in place while this runs (the job store replaces jobs, never changes them).
 */
export async function writeRecordsInSlices(file: string, data: Record<string, unknown>, key: string, sync: boolean): Promise<void> {
  const records = (data[key] as unknown[]) ?? [];
  if (records.length === 0) {
    const text = stringifyRecords(data, key);
    return writeWhole(file, (h) => h.write(text), sync);
  }
  const head = stringifyRecords({ ...data, [key]: [] }, key).slice(0, -"]}\n".length);
  await writeWhole(
    file,
    async (h) => {
      await h.write(`${head}\n`);
      for (let i = 0; i < records.length; i += RECORDS_PER_SLICE) {
        const slice = records.slice(i, i + RECORDS_PER_SLICE).map((r) => JSON.stringify(r));
        const last = i + RECORDS_PER_SLICE >= records.length;
        await h.write(`${slice.join(",\n")}${last ? "\n]}\n" : ",\n"}`);
      }
    },
    sync,
  );
}

/** Temporary file (steno's name for it, `.name.tmp`), filled by `fill`, then renamed over `file`. */
async function writeWhole(file: string, fill: (h: FileHandle) => Promise<unknown>, sync: boolean): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  const h = await open(tmp, "w");
  try {
    await fill(h);
    if (sync) await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, file);
}

/** Parses a data file; a file that does not parse stops start-up with its name, untouched. */
export function parseNamed(file: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UserError(`Data file ${file} is not valid JSON (${(err as Error).message}). It was left untouched; restore it from a backup or move it aside.`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`Data file ${file} does not hold a JSON object. It was left untouched; move it aside to start afresh.`);
  }
  return value as Record<string, unknown>;
}

/**
 * Reads a data file written by stringifyRecords a record at a time: `onRecord` gets each
 * parsed record of `key` in order, and the other top-level fields are returned. Holds one
 * chunk of the file and one record at a time, where JSON.parse of the whole file holds all of
 * its text and every record at once. Null when the file does not exist; "other layout" when
 * it is not laid out as stringifyRecords writes it (say, formatted by hand): then nothing is
 * known about its records, and the caller parses it whole (parseNamed names what is wrong).
 */
export function readRecordLines(
  file: string,
  key: string,
  onRecord: (record: unknown, index: number) => void,
): Record<string, unknown> | null | "other layout" {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const opening = `${JSON.stringify(key)}:[`;
  let head: Record<string, unknown> | null = null;
  let index = 0;
  let closed = false;
  let empty = false;
  /** One line of the file; false when the layout is not stringifyRecords'. */
  const line = (text: string): boolean => {
    if (head === null) {
      // `{"version":1,...,"jobs":[` or, with no records, `{...,"jobs":[]}`
      if (text.endsWith(`${opening}]}`)) {
        empty = true;
        head = tryParse(text);
        return head !== null;
      }
      if (!text.startsWith("{") || !text.endsWith(opening)) return false;
      head = tryParse(`${text}]}`);
      return head !== null;
    }
    if (closed || empty) return text === "";
    if (text === "]}") {
      closed = true;
      return true;
    }
    const record = tryParse(text.endsWith(",") ? text.slice(0, -1) : text);
    if (record === null) return false;
    onRecord(record, index++);
    return true;
  };
  try {
    // Lines are found in the bytes (a newline byte is never part of a longer UTF-8 character)
    // and each is decoded on its own: decoding whole chunks and cutting the text into lines
    // took ~1 s of CPU for a 130 MB file, this ~0.05 s.
    let buf = Buffer.allocUnsafe(1 << 20);
    let held = 0;
    let n: number;
    while ((n = readSync(fd, buf, held, buf.length - held, null)) > 0) {
      const end = held + n;
      let start = 0;
      let nl: number;
      while (start < end && (nl = buf.indexOf(10, start)) >= 0 && nl < end) {
        if (!line(buf.toString("utf8", start, nl))) return "other layout";
        start = nl + 1;
      }
      held = end - start;
      if (start === 0 && held === buf.length) {
        // A line longer than the buffer (a job near its size limits): room for it.
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, held);
        buf = bigger;
      } else if (held) buf.copy(buf, 0, start, end);
    }
    if (held && !line(buf.toString("utf8", 0, held))) return "other layout";
  } finally {
    closeSync(fd);
  }
  if (head === null || (!closed && !empty)) return "other layout";
  return head;
}

function tryParse(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * A data file's text. One that is not a regular file (a FIFO, a device, a directory) is an
 * error naming it: reading a FIFO or a device would wait for ever, or never end. A missing
 * file throws ENOENT as readFileSync does.
 */
export function readDataFile(file: string): string {
  checkRegularFile(file);
  return readFileSync(file, "utf8");
}

/** Throws a UserError naming `file` when it exists and is not a regular file (links are followed). */
export function checkRegularFile(file: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (st.isFile()) return;
  const what = st.isFIFO()
    ? "a FIFO"
    : st.isDirectory()
      ? "a directory"
      : st.isCharacterDevice() || st.isBlockDevice()
        ? "a device"
        : st.isSocket()
          ? "a socket"
          : "not a regular file";
  throw new UserError(
    `Data file ${file} is ${what}, not a regular file. Nothing was read or changed; move it aside (agent-cron makes a new one where none is).`,
  );
}
