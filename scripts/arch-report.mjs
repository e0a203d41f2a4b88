#!/usr/bin/env node
// The house in figures (issue 20's closing note): floors, imports that run back up a floor or
// across between two parts of one floor, and the largest files. Re-run after a change to compare:
//   node scripts/arch-report.mjs            a readable report
//   node scripts/arch-report.mjs --json     the same as JSON
// Floors, lowest first: a file may import its own floor's part and any floor below it. Type-only
// imports count too (they still tie a lower floor to the shape of a higher one) but are marked.
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

const root = path.resolve(process.argv.find((a) => !a.startsWith("-") && a !== process.argv[0] && a !== process.argv[1]) ?? ".");
const src = path.join(root, "src");

// [floor, part]: the part is what may not import a sibling part of the same floor.
function placeOf(rel) {
  const parts = rel.split("/");
  const top = parts.length > 1 ? parts[0] : rel.replace(/\.ts$/, "");
  if (top === "kernel") return [0, "kernel"];
  if (["config", "config-watch", "log", "version"].includes(top)) return [1, "config"];
  if (top === "core") return [2, "core"];
  if (top === "backends") return [3, parts.length > 2 ? `backends/${parts[1]}` : "backends"];
  if (["store", "share"].includes(top)) return [3, `backends/files`];
  if (["executors", "delivery", "run-tools", "ops"].includes(top)) return [3, top];
  if (["mcp", "dashboard"].includes(top)) return [4, top];
  // src/http/ assembles the HTTP server from mcp/, dashboard/ and the ops endpoints.
  if (top === "http") return [5, "http"];
  return [6, "root"];
}
const floorNames = [
  "kernel",
  "config",
  "core",
  "adapters (backends, executors, delivery, run-tools, ops)",
  "edges (mcp, dashboard)",
  "http (the one HTTP server)",
  "root (compose, cli, service, doctor, …)",
];

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const files = walk(src)
  .map((p) => path.relative(src, p).split(path.sep).join("/"))
  .sort();
const importRe = /(?:^|\n)\s*(import|export)\s+(type\s+)?[^"'`;]*?from\s+["'](\.[^"']+)["']|import\(\s*["'](\.[^"']+)["']\s*\)/g;
const edges = [];
const lines = {};
for (const rel of files) {
  const text = readFileSync(path.join(src, rel), "utf8");
  lines[rel] = text.split("\n").length;
  for (const m of text.matchAll(importRe)) {
    const spec = m[3] ?? m[4];
    const typeOnly = Boolean(m[2]);
    const dynamic = Boolean(m[4]);
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec)).replace(/\.js$/, ".ts");
    if (!files.includes(target)) continue;
    const line = text.slice(0, m.index).split("\n").length + (m[0].startsWith("\n") ? 1 : 0);
    edges.push({ from: rel, to: target, line, typeOnly, dynamic });
  }
}

const up = [];
const across = [];
for (const e of edges) {
  const [ff, fp] = placeOf(e.from);
  const [tf, tp] = placeOf(e.to);
  if (tf > ff) up.push(e);
  // backends/local.ts is the backends' own shared helper, below each backend.
  else if (tf === ff && fp !== tp && !(tp === "backends" && fp.startsWith("backends/"))) across.push(e);
}
const pairs = (list) => {
  const byPair = new Map();
  for (const e of list) {
    const key = `${placeOf(e.from)[1]} → ${placeOf(e.to)[1]}`;
    (byPair.get(key) ?? byPair.set(key, []).get(key)).push(e);
  }
  return [...byPair].map(([pair, es]) => ({ pair, imports: es.length, files: [...new Set(es.map((e) => e.from))], edges: es }));
};
// Two parts of one floor that import each other form a cycle: the worst kind of across.
const acrossPairs = pairs(across);
const cycles = acrossPairs
  .filter(({ pair }) => {
    const [a, b] = pair.split(" → ");
    return acrossPairs.some((p) => p.pair === `${b} → ${a}`);
  })
  .map(({ pair }) => pair);

const floors = floorNames.map((name, i) => {
  const members = files.filter((f) => placeOf(f)[0] === i);
  return { floor: i, name, files: members.length, lines: members.reduce((n, f) => n + lines[f], 0), parts: [...new Set(members.map((f) => placeOf(f)[1]))] };
});
const largest = Object.entries(lines)
  .sort((a, b) => b[1] - a[1])
  .slice(0, 12)
  .map(([file, n]) => ({ file: `src/${file}`, lines: n }));
const report = {
  files: files.length,
  lines: Object.values(lines).reduce((a, b) => a + b, 0),
  imports: edges.length,
  floors,
  upward: { count: up.length, pairs: pairs(up).length, byPair: pairs(up) },
  across: { count: across.length, pairs: acrossPairs.length, cycles, byPair: acrossPairs },
  largest,
};

if (process.argv.includes("--json")) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const fmt = (e) => `      src/${e.from}:${e.line} → src/${e.to}${e.typeOnly ? " (type)" : ""}${e.dynamic ? " (lazy)" : ""}`;
  console.log(`${report.files} files, ${report.lines} lines, ${report.imports} relative imports`);
  console.log("\nFloors (lowest first):");
  for (const f of floors) console.log(`  ${f.floor} ${f.name}: ${f.files} files, ${f.lines} lines${f.parts.length > 1 ? ` [${f.parts.join(", ")}]` : ""}`);
  console.log(`\nArrows running back up a floor: ${up.length} imports in ${report.upward.pairs} part pairs`);
  for (const p of report.upward.byPair) {
    console.log(`  ${p.pair} (${p.imports})`);
    p.edges.forEach((e) => console.log(fmt(e)));
  }
  console.log(
    `\nArrows across one floor between parts: ${across.length} imports in ${acrossPairs.length} part pairs; cycles: ${cycles.length ? cycles.join("; ") : "none"}`,
  );
  for (const p of acrossPairs) {
    console.log(`  ${p.pair} (${p.imports})`);
    p.edges.forEach((e) => console.log(fmt(e)));
  }
  console.log("\nLargest files:");
  for (const l of largest) console.log(`  ${String(l.lines).padStart(5)}  ${l.file}`);
}
