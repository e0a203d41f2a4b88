#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof): self and inclusive time per function and
// self time per file, so a profile can be read without DevTools.
//   node bench/lib/profile-summary.mjs bench/results/prof/fire-200-1.cpuprofile [--top 30] [--filter src]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: opt, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "30" }, filter: { type: "string" } } });
const top = Number(opt.top);
for (const file of positionals) {
  const prof = JSON.parse(readFileSync(file, "utf8"));
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const dt = prof.timeDeltas;
  for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const short = (url) =>
    url
      .replace(/^file:\/\//, "")
      .replace(/.*\/node_modules\//, "nm/")
      .replace(/.*\/dist\//, "dist/");
  const key = (n) => `${n.callFrame.functionName || "(anonymous)"} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const selfBy = new Map(),
    inclBy = new Map(),
    fileBy = new Map();
  for (const [id, t] of self) {
    const n = nodes.get(id);
    selfBy.set(key(n), (selfBy.get(key(n)) ?? 0) + t);
    const f = short(n.callFrame.url) || `(${n.callFrame.functionName})`;
    fileBy.set(f, (fileBy.get(f) ?? 0) + t);
    // inclusive: charge every distinct frame on the stack once
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = key(nodes.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      inclBy.set(k, (inclBy.get(k) ?? 0) + t);
    }
  }
  const ms = (us) => (us / 1000).toFixed(1).padStart(8);
  const pctOf = (us) => ((100 * us) / total).toFixed(1).padStart(5) + "%";
  const show = (title, map) => {
    console.log(`\n${title}`);
    [...map]
      .filter(([k]) => !opt.filter || k.includes(opt.filter))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .forEach(([k, t]) => console.log(`${ms(t)} ms ${pctOf(t)}  ${k}`));
  };
  const idle = [...self].filter(([id]) => ["(idle)", "(program)", "(garbage collector)"].includes(nodes.get(id).callFrame.functionName));
  console.log(
    `${file}: ${(total / 1000).toFixed(0)} ms sampled; ${idle.map(([id, t]) => `${nodes.get(id).callFrame.functionName} ${(t / 1000).toFixed(0)} ms`).join(", ")}`,
  );
  show("self time by file", fileBy);
  show("self time by function", selfBy);
  show("inclusive time by function", inclBy);
}
