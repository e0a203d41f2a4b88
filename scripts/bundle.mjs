#!/usr/bin/env node
// npm run build: type-check with tsc, then bundle src/cli.ts and its dependencies into dist/
// with esbuild. One bundle per lazily imported part (--splitting): `serve` over stdio loads
// neither the HTTP transport nor the CLI's job commands. A bundle starts ~100 ms sooner than
// the same code as hundreds of files (README, Benchmarks): module resolution and compile of
// node_modules dominate a cold start.
import { build, transform } from "esbuild";
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

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
  // pg's optional native binding, never installed; pg and pg-boss are optional peers, loaded
  // from node_modules by the postgres store only (src/backends/postgres/index.ts).
  external: ["pg-native", "pg", "pg-boss"],
  plugins: [englishOnlyZod(), noDefaultAjvInSdkServer(), noZod3JsonSchema(), noZod3InSdk()],
  // V8 keeps each module's source as a heap string for as long as the process lives (lazy
  // compiling and Function#toString read it): whitespace and comments were ~30 % of it. Names
  // are kept, so stack traces still say which function; a line:column points into one long line.
  minifyWhitespace: true,
  minifySyntax: true,
  // CommonJS dependencies (proper-lockfile, markdown-it's helpers) call require().
  banner: { js: "import { createRequire as __agentCronRequire } from 'node:module'; const require = __agentCronRequire(import.meta.url);" },
});
chmodSync(`${outdir}/cli.js`, 0o755);

const version = JSON.parse(readFileSync("package.json", "utf8")).version;

// tools/list and initialize prepared here, from the same sources (src/mcp/early-stdio.ts answers
// them before the server has loaded; src/mcp/server.ts reads the tools too): a cold start then
// answers without loading the SDK, the config and the data dir, or building the tools' zod
// schemas and their JSON Schema (README, Benchmarks). test/e2e/startup.test.ts checks both
// against what the sources answer at run time.
{
  const cacheDir = path.resolve(".cache", "tools-list");
  mkdirSync(cacheDir, { recursive: true });
  const entry = path.join(cacheDir, `entry-${process.pid}.mjs`);
  await build({
    stdin: {
      contents:
        'import { toolDefinitions } from "./src/mcp/tool.ts"; import { tools } from "./src/mcp/tools/index.ts"; export { initializeAnswer } from "./src/mcp/server.ts"; export default toolDefinitions(tools);',
      resolveDir: process.cwd(),
      loader: "ts",
    },
    outfile: entry,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "bundle",
    logLevel: "warning",
    external: ["pg-native"],
    plugins: [fixedVersion(version)],
    banner: { js: "import { createRequire as __agentCronRequire } from 'node:module'; const require = __agentCronRequire(import.meta.url);" },
  });
  const { default: list, initializeAnswer } = await import(`${pathToFileURL(entry).href}?${Date.now()}`);
  const initialize = await initializeAnswer();
  writeFileSync(path.join(outdir, "tools-list.json"), JSON.stringify({ tools: list, initialize }));
  rmSync(entry, { force: true });
}

// The MCP App view (ui://agent-cron/jobs, src/mcp/app-view/): one self-contained page, its
// script (ext-apps' App and the view, for the browser) and stylesheet inlined, so that it runs
// under the MCP Apps default CSP, which allows no remote script, style or request.
const viewDir = "src/mcp/app-view";
const viewScript = await build({
  entryPoints: [`${viewDir}/view.ts`],
  bundle: true,
  write: false,
  format: "iife",
  platform: "browser",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  minify: true,
  logLevel: "warning",
  define: { AGENT_CRON_VERSION: JSON.stringify(version) },
  plugins: [englishOnlyZod()],
});
const viewStyle = await transform(readFileSync(`${viewDir}/view.css`, "utf8"), { loader: "css", minify: true });
// Inline, "</script" or "</style" would end the element early, and "<!--" changes how a
// browser reads the rest of a script. Both occur only in strings, template literals and
// regular expressions of the bundle (markdown-it's HTML-block patterns), where \x3C is "<".
const script = viewScript.outputFiles[0].text.replace(/<!--/g, "\\x3C!--").replace(/<\/script/gi, "\\x3C/script");
if (/<\/script|<!--/i.test(script) || /<\/style/i.test(viewStyle.code))
  throw new Error("bundle: the app view's script or style contains a closing tag; escape it in the source.");
const page = readFileSync(`${viewDir}/view.html`, "utf8")
  .replace("/*INLINE_STYLE*/", () => viewStyle.code.trim())
  .replace("/*INLINE_SCRIPT*/", () => script.trim());
// A module whose default export is the page: the server imports it when a host asks.
writeFileSync(
  path.join(outdir, "app-view.js"),
  `// The MCP App view ui://agent-cron/jobs (src/mcp/app-view/), built by scripts/bundle.mjs.\nexport default ${JSON.stringify(page)};\n`,
);

// Last, over every module written above (the app view's page too).
asciiOnly(outdir);

/**
 * src/version.ts reads the package.json beside dist/, which the temporary entry that prepares
 * tools-list.json does not have: there, the version is the one package.json gives now (the
 * server's `serverInfo` and the output schemas' `$id`, src/mcp/tool.ts, name it).
 */
function fixedVersion(version) {
  return {
    name: "fixed-version",
    setup(b) {
      b.onLoad({ filter: /[\\/]src[\\/]version\.ts$/ }, () => ({ contents: `export const VERSION = ${JSON.stringify(version)};`, loader: "ts" }));
    },
  };
}

/**
 * zod's namespace object (`import { z } from "zod/v4"`, as ext-apps and the SDK write it)
 * re-exports all 40-odd locales, which no bundler can drop: 265 KB of the view's 520 KB.
 * The view's messages are zod's defaults, English, which zod imports on its own
 * (classic/schemas.js); every other locale becomes absent.
 */
function englishOnlyZod() {
  return {
    name: "english-only-zod",
    setup(b) {
      b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
        contents: 'export { default as en } from "./en.js";',
        resolveDir: path.dirname(args.path),
        loader: "js",
      }));
    },
  };
}

/**
 * The SDK's Server imports its ajv-based validator to build one when given none. Ours is given
 * one (src/mcp/elicit-validator.ts, loading ajv when the server first asks the user), so the
 * import is only start-up cost: ajv's 260 KB compiled before the first answer. The server's
 * import resolves to a stub that says so if it were ever used. The SDK's Client keeps ajv.
 */
function noDefaultAjvInSdkServer() {
  return {
    name: "no-default-ajv-in-sdk-server",
    setup(b) {
      b.onResolve({ filter: /validation[\\/]ajv-provider\.js$/ }, (args) => {
        if (!/[\\/]@modelcontextprotocol[\\/]sdk[\\/]dist[\\/]esm[\\/]server[\\/]/.test(args.importer)) return undefined;
        return { path: "ajv-provider-stub", namespace: "agent-cron-stub" };
      });
      b.onLoad({ filter: /^ajv-provider-stub$/, namespace: "agent-cron-stub" }, () => ({
        contents:
          "export class AjvJsonSchemaValidator { constructor() { throw new Error('agent-cron passes its own jsonSchemaValidator to the SDK server (src/mcp/elicit-validator.ts).'); } }",
        loader: "js",
      }));
    },
  };
}

/**
 * The SDK converts a tool's zod schema to JSON Schema with zod's own toJSONSchema for zod 4
 * and with zod-to-json-schema for zod 3. Every schema here is zod 4 (ours, and the run tools'
 * registered through McpServer, src/mcp/run-tools.ts), so that converter, 184 KB every stdio
 * server compiled and kept, is a stub that says so if it were ever reached (issue 27).
 */
function noZod3JsonSchema() {
  return {
    name: "no-zod3-json-schema",
    setup(b) {
      b.onResolve({ filter: /^zod-to-json-schema$/ }, () => ({ path: "zod-to-json-schema-stub", namespace: "agent-cron-stub" }));
      b.onLoad({ filter: /^zod-to-json-schema-stub$/, namespace: "agent-cron-stub" }, () => ({
        contents:
          "export function zodToJsonSchema() { throw new Error('agent-cron bundles no zod 3 converter: its schemas are zod 4 (scripts/bundle.mjs).'); }",
        loader: "js",
      }));
    },
  };
}

/**
 * esbuild writes strings and identifiers as ASCII but keeps some comments as they are (zod's
 * have an em dash, ours a §): one such character and V8 holds that file's whole source in
 * memory as two bytes a character, for as long as the process lives (the zod chunk: 392 KB of
 * source, 783 KB of heap). Escaped, every source is one byte a character (issue 27). Outside
 * comments there is nothing to escape, so the code is unchanged.
 */
function asciiOnly(dir) {
  for (const name of readdirSync(dir)) {
    if (!name.endsWith(".js")) continue;
    const file = path.join(dir, name);
    const text = readFileSync(file, "utf8");
    const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
    if (ascii !== text) writeFileSync(file, ascii);
  }
}

/**
 * The SDK's zod-compat imports all of zod 3 (130 KB of source, loaded by every server) for the
 * one case of a tool whose schema is a zod 3 shape; every schema here is zod 4.
 */
function noZod3InSdk() {
  return {
    name: "no-zod3-in-sdk",
    setup(b) {
      b.onResolve({ filter: /^zod\/v3$/ }, (args) =>
        /[\\/]@modelcontextprotocol[\\/]sdk[\\/].*zod-compat\.js$/.test(args.importer) ? { path: "zod3-stub", namespace: "agent-cron-stub" } : undefined,
      );
      b.onLoad({ filter: /^zod3-stub$/, namespace: "agent-cron-stub" }, () => ({
        contents: "export function object() { throw new Error('agent-cron bundles no zod 3: its schemas are zod 4 (scripts/bundle.mjs).'); }",
        loader: "js",
      }));
    },
  };
}
