import { z } from "zod";
import { UserError } from "../kernel/errors.js";
import { describeIssue } from "../kernel/issues.js";
import type { Job, RunOutcome } from "./jobs.js";

/**
 * Tools inside a run (SPEC §21): what an agent may say about its own run and job, and nothing
 * more. The tools' shapes are here, once, for the MCP server the agent talks to
 * (`agent-cron run-tools`) and for the owner that applies them.
 */

/** Every job's runs get these; a job with self_service also gets pause_me and reschedule_me. */
export const BASE_RUN_TOOLS = ["report_nothing", "remember", "ask_person"] as const;
export const SELF_SERVICE_TOOLS = ["pause_me", "reschedule_me"] as const;
export type RunToolName = (typeof BASE_RUN_TOOLS)[number] | (typeof SELF_SERVICE_TOOLS)[number];

/** A job's notes (remember) are kept up to this many bytes in all; the oldest go first. */
export const NOTES_MAX_BYTES = 8 * 1024;

export function runToolsOf(job: Pick<Job, "self_service">): RunToolName[] {
  return job.self_service ? [...BASE_RUN_TOOLS, ...SELF_SERVICE_TOOLS] : [...BASE_RUN_TOOLS];
}

const text = (max: number, what: string) => z.string().trim().min(1).max(max).describe(what);

/**
 * Each tool: what a model reads, and its input. The input is made when asked for: only a run's
 * tools server (and a call to one of them) reads it, not every server that imports this.
 */
export const RUN_TOOL_SPECS: Record<RunToolName, { title: string; description: string; input: () => z.ZodRawShape }> = {
  report_nothing: {
    title: "Nothing to report",
    description:
      'Call this when this scheduled run found nothing worth telling anyone (no change, nothing new). The run is recorded as quiet and no message goes out. Then end your turn. Example: {"reason": "no new issues since yesterday"}.',
    input: () => ({ reason: text(2000, "Why there is nothing to report, in a few words") }),
  },
  remember: {
    title: "Remember for later runs",
    description:
      'Keep a short note for the next runs of this job (they get it under "Notes from earlier runs:"); up to 8 KiB of notes are kept, oldest dropped first. Example: {"note": "last seen issue: #4812"}.',
    input: () => ({ note: text(NOTES_MAX_BYTES, "What later runs should know") }),
  },
  ask_person: {
    title: "Ask a person",
    description:
      'Stop and ask a person: the question goes to the job\'s channels and the run is recorded as needing attention. Use it when you cannot go on safely without a decision. Then end your turn. Example: {"question": "The deploy key expired; should I rotate it?"}.',
    input: () => ({ question: text(4000, "The question, with what the person needs to answer it") }),
  },
  pause_me: {
    title: "Pause this job",
    description: 'Pause this job (no more scheduled runs until a person resumes it), with the reason. Example: {"reason": "the project was archived"}.',
    input: () => ({ reason: text(2000, "Why the job should stop") }),
  },
  reschedule_me: {
    title: "Reschedule this job",
    description:
      'Give this job a new schedule (cron, @every, an ISO time or a delay such as "in 2h"). Under approval the job waits for a person again. Example: {"schedule": "0 9 * * 1"}.',
    input: () => ({ schedule: text(200, "The new schedule") }),
  },
};

/** Checks a call's arguments against its tool's input; a UserError naming what is wrong. */
export function parseRunToolArgs(tool: RunToolName, args: Record<string, unknown>): Record<string, string> {
  const r = z.strictObject(RUN_TOOL_SPECS[tool].input()).safeParse(args);
  if (!r.success) throw new UserError(`${tool}: ${describeIssue(r.error.issues[0] as z.core.$ZodIssue, args)}`);
  return r.data as Record<string, string>;
}

/** What an agent said of its run through report_nothing or ask_person (the last call wins). */
export interface RunSaid {
  outcome: RunOutcome | null;
  note: string | null;
}

/** A job's notes with `note` added, the oldest dropped until they fit NOTES_MAX_BYTES. */
export function withNote(notes: Job["notes"], note: Job["notes"][number]): Job["notes"] {
  const out = [...notes, note];
  let bytes = out.reduce((n, x) => n + Buffer.byteLength(x.text), 0);
  while (out.length > 1 && bytes > NOTES_MAX_BYTES) bytes -= Buffer.byteLength(out.shift()!.text);
  return out;
}
