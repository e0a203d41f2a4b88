#!/usr/bin/env node
// npm run build: type-check with tsc, then bundle src/cli.ts and its dependencies into dist/
// with esbuild. One bundle per lazily imported part (--splitting): `serve` over stdio loads
// neither the HTTP transport nor the CLI's job commands. A bundle starts ~100 ms sooner than
// the same code as hundreds of files (README, Benchmarks): module resolution and compile of
// node_modules dominate a cold start.
import { build } from "esbuild";
import { chmodSync, rmSync } from "node:fs";

// AGENT_CRON_DIST builds elsewhere (tests read the same variable), so two builds never clash.
const outdir = process.env.AGENT_CRON_DIST || "dist";
rmSync(outdir, { recursive: true, force: true });
await build({
  // dist/cli.js (the bin) is src/bin.ts, which turns on the compile cache and then loads src/cli.ts.
  entryPoints: { cli: "src/bin.ts" },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "bundle",
  logLevel: "warning",
  // pg's optional native binding, never installed.
  external: ["pg-native"],
  // CommonJS dependencies (proper-lockfile, markdown-it's helpers) call require().
  banner: { js: "import { createRequire as __agentCronRequire } from 'node:module'; const require = __agentCronRequire(import.meta.url);" },
});
chmodSync(`${outdir}/cli.js`, 0o755);
