// Modules of src/ that a benchmark calls directly (the store, the executors). dist/ is one
// bundle (scripts/bundle.mjs) that exports none of them, so each is bundled here on its own,
// from the same sources, into .cache/bench-lib/, and imported.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const outdir = path.join(root, ".cache", "bench-lib");

/** Bundles `file` (a path under src/, without ".ts", e.g. "core/ledger") and imports it. */
export async function srcModule(file) {
  const { build } = await import("esbuild");
  // Named after its whole path: src/executors/index.ts and another folder's index.ts differ.
  const outfile = path.join(outdir, `${file.replaceAll("/", "-")}.js`);
  await build({
    entryPoints: [path.join(root, "src", `${file}.ts`)],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning",
  });
  return import(pathToFileURL(outfile).href);
}
