#!/usr/bin/env node
// What our tools/list costs an SDK client (a benchmark, not a test): on listTools() the
// TypeScript SDK's Client compiles an Ajv validator for every tool's outputSchema
// (client/index.js, cacheToolMetadata), once per connection, so it is part of every "start
// to listTools()" figure. Each sample is a fresh Node process, as a client's first connection
// is: it reads a tools-list.json (not timed), then times `new AjvJsonSchemaValidator()` and
// `getValidator(outputSchema)` for every tool, as the Client does, in wall time and in the
// process's CPU time. Prints the medians and every sample; give several lists to compare
// builds (they alternate, so changes in the machine's load hit each alike).
//
//   node bench/client-compile.mjs                                   # dist/tools-list.json, 9 samples
//   node bench/client-compile.mjs /tmp/old/tools-list.json dist/tools-list.json --samples 15
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), "..");
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { samples: { type: "string", default: "9" }, child: { type: "boolean", default: false } },
});

if (opt.child) {
  const { tools } = JSON.parse(readFileSync(positionals[0], "utf8"));
  const { AjvJsonSchemaValidator } = await import("@modelcontextprotocol/sdk/validation/ajv");
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const validator = new AjvJsonSchemaValidator();
  for (const tool of tools) if (tool.outputSchema) validator.getValidator(tool.outputSchema);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000 }));
} else {
  const lists = positionals.length ? positionals : [path.join(root, "dist", "tools-list.json")];
  const samples = Object.fromEntries(lists.map((l) => [l, { ms: [], cpuMs: [] }]));
  for (let i = 0; i < Number(opt.samples); i++) {
    for (const list of lists) {
      const out = execFileSync(process.execPath, [here, "--child", list], { cwd: root, encoding: "utf8" });
      const { ms, cpuMs } = JSON.parse(out);
      samples[list].ms.push(ms);
      samples[list].cpuMs.push(cpuMs);
    }
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  for (const list of lists) {
    const { tools } = JSON.parse(readFileSync(list, "utf8"));
    const schemas = tools.filter((t) => t.outputSchema);
    // What the client compiles: one per schema without an $id, one per distinct $id.
    const compiles =
      schemas.filter((t) => typeof t.outputSchema.$id !== "string").length + new Set(schemas.map((t) => t.outputSchema.$id).filter(Boolean)).size;
    const { ms, cpuMs } = samples[list];
    const row = (xs) => `median ${median(xs).toFixed(1)} ms (samples: ${xs.map((x) => x.toFixed(1)).join(", ")})`;
    console.log(`${list}: ${schemas.length} output schemas, ${compiles} compiles\n  wall: ${row(ms)}\n  CPU:  ${row(cpuMs)}`);
  }
}
