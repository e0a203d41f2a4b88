import type { Config } from "./config.js";

/**
 * `agent-cron import crontab`: each crontab line becomes a job of a `command` executor the
 * person configured, or a reason it cannot be one. A line's command is never stored as a
 * program: it must be exactly the argv of a configured command executor (tool callers never
 * choose programs, and an import must not make an executor that would let them), so a line
 * whose command matches none is listed with the executor entry to add to config.json.
 */
export interface CrontabLine {
  line: number;
  text: string;
}
export interface ImportableLine extends CrontabLine {
  schedule: string;
  timezone: string | undefined;
  argv: string[];
  executor: string;
  name: string;
}
export interface RefusedLine extends CrontabLine {
  reason: string;
  /** For a command no executor runs: the config entry that would (the person decides). */
  suggested_executor?: { name: string; config: { type: "command"; command: string[] } };
}

const NICKNAMES: Record<string, string> = {
  "@yearly": "@yearly",
  "@annually": "@yearly",
  "@monthly": "@monthly",
  "@weekly": "@weekly",
  "@daily": "@daily",
  "@midnight": "@daily",
  "@hourly": "@hourly",
};
const SHELL_CHARS = /[|&;<>()$`*?[\]{}~]/;

export function planCrontab(text: string, config: Config): { importable: ImportableLine[]; refused: RefusedLine[] } {
  const importable: ImportableLine[] = [];
  const refused: RefusedLine[] = [];
  const byArgv = new Map<string, string>();
  for (const [name, e] of Object.entries(config.executors)) {
    if (e.type === "command" && !e.command.some((a) => /\{(prompt|work_dir|run_id|job_id|session_id)\}/.test(a))) byArgv.set(JSON.stringify(e.command), name);
  }
  let timezone: string | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === "" || t.startsWith("#")) return;
    const refuse = (reason: string, extra: Partial<RefusedLine> = {}) => void refused.push({ line, text: t, reason, ...extra });
    const env = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(t);
    if (env) {
      if (env[1] === "CRON_TZ") {
        timezone = env[2].replace(/^["']|["']$/g, "");
        return;
      }
      return refuse(
        `an environment line (${env[1]}=…): agent-cron passes no crontab variables; put what the program needs in its executor's "env" in config.json`,
      );
    }
    let schedule: string;
    let rest: string;
    if (t.startsWith("@")) {
      const [nick, ...cmd] = t.split(/\s+/);
      if (nick === "@reboot") return refuse("@reboot has no time of day: agent-cron runs jobs on a schedule; start it with your system's boot service instead");
      if (!NICKNAMES[nick]) return refuse(`unknown nickname ${nick}; agent-cron knows ${Object.keys(NICKNAMES).join(" ")}`);
      schedule = NICKNAMES[nick];
      rest = cmd.join(" ");
    } else {
      const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(t);
      if (!m) return refuse("not a crontab line: five time fields and a command, a @nickname and a command, or NAME=value");
      schedule = m.slice(1, 6).join(" ");
      rest = m[6];
    }
    if (rest.trim() === "") return refuse("no command after the schedule");
    if (/(^|[^\\])%/.test(rest))
      return refuse(
        '"%" in a crontab command starts the program\'s standard input; put the command in a script and configure that script as a command executor',
      );
    const argv = splitWords(rest);
    if (argv === null)
      return refuse(
        "the command uses the shell (pipes, redirections, variables, globs or unbalanced quotes); put it in a script and configure that script as a command executor",
      );
    const executor = byArgv.get(JSON.stringify(argv));
    if (!executor) {
      const suggested = suggestName(argv[0], config);
      return refuse(`no command executor in config.json runs exactly this command; add one (below), then import again`, {
        suggested_executor: { name: suggested, config: { type: "command", command: argv } },
      });
    }
    importable.push({ line, text: t, schedule, timezone, argv, executor, name: `crontab-${executor}-${line}` });
  });
  return { importable, refused };
}

/** A command's words as a shell without expansions would split them; null when it needs a real shell. */
function splitWords(command: string): string[] | null {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) return null;
      word += command.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < command.length && command[j] !== '"'; j++) {
        if (command[j] === "\\" && j + 1 < command.length) word += command[++j];
        else if (command[j] === "$" || command[j] === "`") return null;
        else word += command[j];
      }
      if (j >= command.length) return null;
      i = j;
      inWord = true;
    } else if (c === "\\") {
      if (i + 1 >= command.length) return null;
      word += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if (SHELL_CHARS.test(c) || (c === "#" && !inWord)) {
      return null;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words.length ? words : null;
}

function suggestName(program: string, config: Config): string {
  const base =
    (program.split("/").pop() ?? "job")
      .replace(/\.[a-z0-9]+$/i, "")
      .replace(/[^A-Za-z0-9_.-]+/g, "-")
      .replace(/^-+|-+$/g, "") || "job";
  let name = base;
  for (let n = 2; config.executors[name]; n++) name = `${base}-${n}`;
  return name;
}
