import { UserError } from "../../../kernel/errors.js";
import { RunSchema, type Run } from "../../../core/jobs.js";
import { parseNamed } from "./json-file.js";

/**
 * One job's run history on disk: `runs/<job_id>.jsonl`, one JSON object a line.
 *
 *   {"run_log":1,"job_id":"…"}                 the header: the first line, naming the job
 *   {"put":{…run…}}                            a run added, or its newer copy (same id)
 *   {"put":{…run…},"drop":["<run id>",…]}      …and the runs its arrival evicted from the cap
 *
 * Replaying the lines in order gives the history: a put of a known id replaces that run where
 * it stands, a new id goes last (newest), a drop removes. Recording a run appends one line, so
 * its cost does not grow with the history; the store rewrites the file from memory (header and
 * one put per run) once it has grown past twice the cap. A crash can only cut the last line
 * short: such a line was never acknowledged and is dropped when the log is read.
 */
export const RUN_LOG_VERSION = 1;

export const RUN_LOG_SUFFIX = ".jsonl";

export function headerLine(jobId: string): string {
  return JSON.stringify({ run_log: RUN_LOG_VERSION, job_id: jobId }) + "\n";
}

export function putLine(run: Run, dropped: readonly string[] = []): string {
  return JSON.stringify(dropped.length ? { put: run, drop: dropped } : { put: run }) + "\n";
}

/** A whole log holding `runs` (oldest first), as the store writes it when it compacts. */
export function formatRunLog(jobId: string, runs: readonly Run[]): string {
  let text = headerLine(jobId);
  for (const run of runs) text += putLine(run);
  return text;
}

export interface ReplayedLog {
  /** The history, oldest first. */
  runs: Run[];
  /** Entries after the header. */
  lines: number;
  /** Bytes up to the end of the last whole line (a torn last line is not counted). */
  bytes: number;
  /** A last line without its newline: cut short by a crash. */
  torn: boolean;
}

/**
 * The non-empty whole lines of a log or journal's text with their 1-based numbers; a torn last
 * line (no newline yet) is left out, for the caller to judge.
 */
export function* wholeLines(text: string): Generator<[line: string, lineNo: number]> {
  const end = text.lastIndexOf("\n") + 1;
  let lineNo = 0;
  for (let start = 0; start < end; ) {
    const nl = text.indexOf("\n", start);
    const line = text.slice(start, nl);
    start = nl + 1;
    lineNo++;
    if (line) yield [line, lineNo];
  }
}

/**
 * Replays a log's text. Every line but a torn last one must parse and hold a valid run: a
 * log that does not is refused with a sentence naming the file and line.
 */
export function replayRunLog(file: string, jobId: string, text: string): ReplayedLog {
  const byId = new Map<string, Run>();
  const end = text.lastIndexOf("\n") + 1;
  const torn = end < text.length;
  let lines = 0;
  for (const [line, lineNo] of wholeLines(text)) {
    const where = `${file} (line ${lineNo})`;
    const entry = parseNamed(where, line) as { put?: unknown; drop?: unknown; run_log?: unknown; job_id?: unknown };
    if (lineNo === 1) {
      if (entry.run_log !== RUN_LOG_VERSION || entry.job_id !== jobId) {
        throw new UserError(
          `Data file ${where} is not the header of job ${jobId}'s run log (expected {"run_log":${RUN_LOG_VERSION},"job_id":"${jobId}"}). It was left untouched; move it aside to start that job's history afresh.`,
        );
      }
      continue;
    }
    lines++;
    if (entry.put === undefined || (entry.drop !== undefined && !isStringArray(entry.drop))) {
      throw new UserError(
        `Data file ${where} is not a run log entry ({"put":…} with an optional "drop" list of run ids). It was left untouched; fix or remove that line.`,
      );
    }
    const parsed = RunSchema.safeParse(entry.put);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UserError(
        `Data file ${where} holds an invalid run (${issue.path.join(".") || "record"}: ${issue.message}). It was left untouched; fix or remove that line.`,
      );
    }
    const run = parsed.data;
    byId.set(run.id, run);
    if (entry.drop) for (const id of entry.drop as string[]) byId.delete(id);
  }
  const bytes = Buffer.byteLength(text) - (torn ? Buffer.byteLength(text.slice(end)) : 0);
  return { runs: [...byId.values()], lines, bytes, torn };
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}
