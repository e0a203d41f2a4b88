import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
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
    const chunk = Buffer.allocUnsafe(1 << 20);
    const decoder = new StringDecoder("utf8");
    let rest = "";
    let n: number;
    while ((n = readSync(fd, chunk, 0, chunk.length, null)) > 0) {
      const text = rest + decoder.write(chunk.subarray(0, n));
      let start = 0;
      let end: number;
      while ((end = text.indexOf("\n", start)) >= 0) {
        if (!line(text.slice(start, end))) return "other layout";
        start = end + 1;
      }
      rest = text.slice(start);
    }
    rest += decoder.end();
    if (rest !== "" && !line(rest)) return "other layout";
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
