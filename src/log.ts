/**
 * The one logger of a process: every line a server writes to stderr goes through it, in the
 * config's `log_format`. "text" is for a person (time, "agent-cron LEVEL: message", then the
 * event and the job and run ids); "json" is one object per line for a log pipeline, with
 * `time`, `level`, `event`, `message`, `job_id` and `run_id` always present. stdout is never
 * used: over stdio it is the protocol.
 */
import { flushNow, writeTogether } from "./kernel/together.js";

export type LogFormat = "text" | "json";
export type LogLevel = "info" | "warning" | "error";

export interface LogFields {
  job_id?: string | null;
  run_id?: string | null;
  [key: string]: unknown;
}

export class Logger {
  constructor(
    private format: LogFormat = "text",
    // A turn's lines leave together (kernel/together.ts): a fleet logs every run. An error goes
    // out at once, with what was held: it may be the last line a dying process writes.
    private readonly write: (line: string, urgent: boolean) => void = (line, urgent) => {
      writeTogether(process.stderr, line + "\n");
      if (urgent) flushNow(process.stderr);
    },
    private readonly now: () => Date = () => new Date(),
  ) {}

  setFormat(format: LogFormat): void {
    this.format = format;
  }

  log(level: LogLevel, event: string, message: string, fields: LogFields = {}): void {
    const { job_id = null, run_id = null, ...rest } = fields;
    const time = this.now().toISOString();
    if (this.format === "json") {
      const extra = Object.fromEntries(Object.entries(rest).filter(([, v]) => v === null || ["string", "number", "boolean"].includes(typeof v)));
      this.write(JSON.stringify({ time, level, event, message, job_id, run_id, ...extra }), level === "error");
      return;
    }
    const ids = [`event=${event}`, ...(job_id ? [`job=${job_id}`] : []), ...(run_id ? [`run=${run_id}`] : [])].join(" ");
    this.write(`${time} agent-cron ${level}: ${message} [${ids}]`, level === "error");
  }

  /**
   * The ready line (SPEC §1): launchers and tests wait for "agent-cron ready …", so in text it
   * stays exactly that line; in json it is the message of a "ready" event.
   */
  ready(line: string, fields: LogFields = {}): void {
    if (this.format === "json") this.log("info", "ready", line, fields);
    else this.write(line, true);
  }

  /**
   * A line written the older way, "agent-cron LEVEL: message" or "agent-cron: message", by a
   * part that takes a line writer (the HTTP transport, the dashboard): its level is read back.
   */
  line(text: string, event: string): void {
    const m = /^agent-cron(?: (info|warning|error))?: ([\s\S]*)$/.exec(text);
    this.log((m?.[1] as LogLevel | undefined) ?? "info", event, m ? m[2] : text);
  }
}

/** This process's logger; `serve` sets its format from the config. */
export const logger = new Logger();
