/**
 * A strict reader of the Prometheus text format (version 0.0.4), for tests that scrape
 * /metrics: every sample must belong to a family declared by # HELP and # TYPE, label values
 * are unescaped, and a malformed line fails the test instead of being skipped.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const familyOf = (sample: string): Family | undefined => {
    if (families.has(sample)) return families.get(sample);
    for (const suffix of ["_bucket", "_sum", "_count", "_total", "_created"]) {
      if (sample.endsWith(suffix) && families.has(sample.slice(0, -suffix.length))) return families.get(sample.slice(0, -suffix.length));
    }
    return undefined;
  };
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const f = families.get(meta[2]) ?? { name: meta[2], type: "untyped", help: "", samples: [] };
      if (meta[1] === "HELP") f.help = meta[3];
      else {
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(meta[3])) throw new Error(`line ${i + 1}: unknown type "${meta[3]}"`);
        f.type = meta[3];
      }
      families.set(meta[2], f);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`line ${i + 1} is not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < m[3].length) {
        const l = LABEL.exec(m[3]);
        if (!l) throw new Error(`line ${i + 1}: bad labels {${m[3]}}`);
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      }
    }
    const value = m[4] === "+Inf" ? Infinity : m[4] === "-Inf" ? -Infinity : Number(m[4]);
    if (Number.isNaN(value) && m[4] !== "NaN") throw new Error(`line ${i + 1}: bad value ${m[4]}`);
    const family = familyOf(m[1]);
    if (!family) throw new Error(`line ${i + 1}: sample ${m[1]} has no # TYPE`);
    family.samples.push({ name: m[1], labels, value });
  }
  return families;
}

/** The sum of the samples named `name` whose labels include `labels`; 0 when there is none. */
export function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
  }
  return sum;
}

/** Whether any sample of that name (and labels) is present. */
export function hasSample(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): boolean {
  return [...families.values()].some((f) => f.samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)));
}
