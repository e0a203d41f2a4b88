#!/usr/bin/env node
// What jobs with an output_schema cost the server over time (a benchmark, not a test): the
// built server over stdio, driven by the SDK's client through N add_cron + remove cycles,
// each job with a structured output_schema of its own ($id and properties differ); the
// server's resident memory (VmRSS, Linux) before and after, and after a forced settle.
//
//   node bench/schemas.mjs                    # 500 cycles, dist/cli.js
//   node bench/schemas.mjs --cycles 1000 --cli path/to/other/dist/cli.js
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: opt } = parseArgs({
  options: { cycles: { type: "string", default: "500" }, cli: { type: "string", default: path.join(root, "dist", "cli.js") } },
});
const CYCLES = Number(opt.cycles);

const dir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-bench-schemas-"));
writeFileSync(
  path.join(dir, "config.json"),
  JSON.stringify({ executors: { echo: { type: "command", command: ["true"], sandbox: "none" } }, default_executor: "echo" }),
);
const transport = new StdioClientTransport({
  command: process.execPath,
  args: [opt.cli, "serve", "--data-dir", dir],
  env: { PATH: process.env.PATH ?? "", HOME: os.homedir() },
  stderr: "ignore",
});
const client = new Client({ name: "bench", version: "1" });
await client.connect(transport);
const pid = transport.pid;
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;

const schema = (i) => ({
  $id: `https://example.com/report-${i}.json`,
  type: "object",
  required: ["summary", "items"],
  properties: {
    summary: { type: "string", maxLength: 2000 },
    items: {
      type: "array",
      items: {
        type: "object",
        properties: Object.fromEntries(Array.from({ length: 20 }, (_, k) => [`f${i}_${k}`, { type: "string", pattern: `^[a-z]{1,${k + 1}}$` }])),
      },
    },
  },
});

const call = async (name, args) => {
  const r = await client.callTool({ name, arguments: args });
  if (r.isError) throw new Error(r.content[0].text);
  return r.structuredContent;
};
// A first job warms the validator code up, so "before" is the server at work, not at rest.
await call("remove", { job: (await call("add_cron", { schedule: "@daily", prompt: "p", output_format: "structured", output_schema: schema(-1) })).job.id });
const before = rssMb();
const t0 = performance.now();
for (let i = 0; i < CYCLES; i++) {
  const { job } = await call("add_cron", { schedule: "@daily", prompt: "p", output_format: "structured", output_schema: schema(i) });
  await call("remove", { job: job.id });
}
const ms = performance.now() - t0;
const after = rssMb();
await new Promise((r) => setTimeout(r, 2000));
const settled = rssMb();
console.log(
  `${CYCLES} add_cron + remove cycles with an output_schema (${path.relative(root, opt.cli)}): ${ms.toFixed(0)} ms; server RSS ${before.toFixed(0)} MB before, ${after.toFixed(0)} MB after, ${settled.toFixed(0)} MB 2 s later`,
);
await client.close();
rmSync(dir, { recursive: true, force: true });
