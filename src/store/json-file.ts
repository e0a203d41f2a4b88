import { DataFile } from "lowdb/node";
import { UserError } from "../core/errors.js";

/**
 * A lowdb data file whose records sit one per line: compact enough to rewrite quickly at
 * 100,000 jobs, still plain JSON a person can read and diff. Writes go through steno (temp
 * file + rename, concurrent writes coalesced), so a kill -9 never leaves half a file.
 */
export function recordsFile<T>(file: string, key: string): DataFile<Record<string, unknown>> {
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
    throw new UserError(
      `Data file ${file} is not valid JSON (${(err as Error).message}). It was left untouched; restore it from a backup or move it aside.`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`Data file ${file} does not hold a JSON object. It was left untouched; move it aside to start afresh.`);
  }
  return value as Record<string, unknown>;
}
