/**
 * The README's config table and job-field table against their one source, the zod schemas
 * (ConfigSchema, jobFieldsShape) and the defaults the code applies: every key documented, no
 * key documented that does not exist, every key described (`.describe()`), each default the
 * README or a description states equal to the one applied, and every value an enum accepts
 * named in its row.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { configSchema, parseConfig } from "../../src/config.js";
import { jobFieldsShape } from "../../src/core/job-input.js";
import { ROOT } from "../helpers/data-dir.js";
import { InProcessServer, type Structured } from "../helpers/in-process.js";

const README = readFileSync(path.join(ROOT, "README.md"), "utf8");

interface Row {
  keys: string[];
  defaults: string;
  meaning: string;
  line: string;
}

/** The rows of the first table after `heading` whose header starts with `first`. */
function table(heading: string, first: string): Row[] {
  const from = README.indexOf(`\n${heading}\n`);
  expect(from, `README heading ${heading}`).toBeGreaterThan(0);
  const lines = README.slice(from).split("\n");
  const start = lines.findIndex((l) => l.startsWith(`| ${first} |`));
  const rows: Row[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    const [keys, defaults, ...meaning] = line
      .slice(1, -1)
      .split(" | ")
      .map((c) => c.trim());
    // `http.*` documents the object http; `retries`, `retry_delay_seconds` two fields.
    rows.push({ keys: [...keys.matchAll(/`([a-z_]+)(?:\.\*)?`/g)].map((m) => m[1]), defaults, meaning: meaning.join(" | "), line });
  }
  return rows;
}

/** Strips .default(), .optional(), .prefault() to the schema that says what is accepted. */
function inner(schema: z.ZodType): z.ZodType {
  let s = schema as z.ZodType & { _zod: { def: { innerType?: z.ZodType } } };
  while (s._zod.def.innerType) s = s._zod.def.innerType as typeof s;
  return s;
}

/** The values an enum field (or a list of enum values) accepts; null for other fields. */
function enumValues(schema: z.ZodType): string[] | null {
  const s = inner(schema) as z.ZodType & { options?: unknown[]; element?: z.ZodType };
  if (s.def.type === "enum") return (s as unknown as { options: string[] }).options;
  if (s.def.type === "array" && s.element) return enumValues(s.element);
  return null;
}

const BYTES: Record<string, number> = { KiB: 1024, MiB: 1024 * 1024, GiB: 1024 * 1024 * 1024 };

/** Whether `text` states `value` (a number, word, list or JSON object), in any form the README uses for it. */
function states(text: string, value: unknown): boolean {
  if (typeof value === "boolean") return new RegExp(`\\b(${value ? "true|on" : "false|off"})\\b`).test(text);
  if (typeof value === "number") {
    for (const m of text.matchAll(/(\d[\d,_]*(?:\.\d+)?)\s*(KiB|MiB|GiB)?/g)) {
      if (Number(m[1].replace(/[,_]/g, "")) * (m[2] ? BYTES[m[2]] : 1) === value) return true;
    }
    return false;
  }
  if (typeof value === "string") return new RegExp(`(^|[\\s\`"(])${value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}($|[\\s\`",);:])`).test(text);
  if (Array.isArray(value)) return value.length > 0 && value.every((v) => states(text, v));
  if (value && typeof value === "object") {
    const json = /`(\{.*\})`/.exec(text)?.[1];
    return json !== undefined && JSON.stringify(JSON.parse(json)) === JSON.stringify(value);
  }
  return false;
}

/** Nothing applied: no value, or an empty list or map. */
const isUnset = (v: unknown) =>
  v === undefined || v === null || (Array.isArray(v) && v.length === 0) || (typeof v === "object" && v !== null && Object.keys(v).length === 0);

/** What a description says the default is: `(default 1800)`, `default 4096`, `"fsync" (default)`; null when it says none. */
function describedDefault(description: string): string | null {
  // The last "default …" is the one about the key (an earlier one may be "a run's default work dir").
  const last = [...description.matchAll(/\bdefault:? ([^;)]+)/gi)].at(-1)?.[1];
  return /"([^"]+)" \(default\)/.exec(description)?.[1] ?? /\(default:? ([^)]+)\)/i.exec(description)?.[1] ?? last ?? null;
}

/**
 * Checks one table against its schema shape and the defaults applied (`applied[key]`). A
 * default cell in words ("none", "the system's", "see above") is read as "nothing stated".
 */
function checkTable(rows: Row[], shape: Record<string, z.ZodType>, applied: Record<string, unknown>, wordy: Record<string, RegExp>) {
  const documented = rows.flatMap((r) => r.keys);
  expect.soft([...documented].sort(), "README keys against the schema").toEqual(Object.keys(shape).sort());
  expect.soft(documented.length, "each key in one row").toBe(new Set(documented).size);
  for (const row of rows) {
    // A row of several fields gives their defaults in order ("3, 1"), or one for all ("none").
    const cells = row.keys.length > 1 && row.defaults.split(", ").length === row.keys.length ? row.defaults.split(", ") : row.keys.map(() => row.defaults);
    row.keys.forEach((key, i) => {
      const value = applied[key];
      const cell = cells[i];
      const description = shape[key].description;
      expect.soft(description, `${key} has a .describe()`).toBeTruthy();
      if (cell === "(required)" || wordy[key]?.test(cell)) return;
      if (isUnset(value)) expect.soft(cell, `${key}: nothing is applied, so the README states no default value`).toMatch(/^(none|\(required\))/);
      else expect.soft(states(cell, value), `${key}: the README's default "${cell}" against the applied ${JSON.stringify(value)}`).toBe(true);
      const said = describedDefault(description!);
      if (said !== null && !wordy[key]?.test(said) && !isUnset(value)) {
        expect.soft(states(said, value), `${key}: its description's default "${said}" against the applied ${JSON.stringify(value)}`).toBe(true);
      }
      const values = enumValues(shape[key]);
      for (const v of values ?? []) expect.soft(states(row.meaning + " " + row.defaults, v), `${key}: the README names the value "${v}"`).toBe(true);
    });
  }
}

describe("the README's tables against the zod schemas and the defaults applied", () => {
  it("the config table: every key of config.json, described, with the default parseConfig applies and every enum value named", () => {
    const applied = parseConfig({}) as unknown as Record<string, unknown>;
    checkTable(table("## Configuration", "key"), configSchema().shape as unknown as Record<string, z.ZodType>, applied, {
      // The system's zone, found at start.
      timezone: /^the system's$/,
      // Objects whose keys the row lists in words.
      http: /^see above$/,
      webhooks: /^see above$/,
      // With no executors configured, one named claude (Claude Code) is made.
      executors: /^`claude`$/,
    });
  });

  describe("the job-field table", () => {
    let s: InProcessServer;
    let job: Structured;
    beforeAll(async () => {
      s = await InProcessServer.start();
      const { job: row } = await s.tool("add_cron", { schedule: "@daily", prompt: "x" });
      job = await s.job(row.id);
    });
    afterAll(async () => {
      await s?.cleanup();
    });

    it("every field a caller may set, described, with the default a new job gets and every enum value named", () => {
      checkTable(table("### Job fields a caller may set", "field"), jobFieldsShape(), job, {
        // Filled from the server's config at creation.
        timezone: /^config, else the system's$/,
        // Stored null: the config's value is read at each run.
        catch_up_window_seconds: /^the config's$/,
        prompt_context: /^on \(off for `command`\)$/,
        // Stored null: every event.
        notify_on: /^all events$/,
        executor: /^none: follows `default_executor`$/,
        work_dir: /^a fresh folder per run/,
      });
    });
  });
});
