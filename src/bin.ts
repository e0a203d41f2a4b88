#!/usr/bin/env node
import module from "node:module";
import v8 from "node:v8";
import { answerEarly, stdioServeArgs } from "./mcp/early-stdio.js";
import { startServeV8Mode } from "./v8-mode.js";

const argv = process.argv.slice(2);
// Before anything else runs: what runs at start-up is never hot (src/v8-mode.ts).
startServeV8Mode(argv);

// A stdio client's initialize and tools/list are answered now, from what the build prepared,
// before the rest loads (src/mcp/early-stdio.ts).
const serveArgs = stdioServeArgs(argv);
const early = answerEarly(argv);

// V8 grows the young generation from 1 MB up to 16 MB semi-spaces as a server allocates: at
// 1,000 jobs that alone was ~8 MB of RSS (75 → 67 MB), and every fork copies the page tables
// of it. Kept at its starting size, a scavenge runs more often but stays short; measured in
// `npm run bench` (memory, fire): no cost to start-up or the fleet's lateness.
v8.setFlagsFromString("--semi-space-growth-factor=1");

// Node ≥ 22.1 keeps compiled code on disk: every later start skips most of compiling the
// bundle (a client spawns a stdio server on each start). It is turned on before the CLI's
// own imports, so that they are cached too; a no-op on Node 20.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
// Not while the early answers are given: the load would hold them (src/mcp/early-stdio.ts; on
// Node 22 a module graph loads without giving the event loop a turn).
await early;
// A stdio server whose data dir has an owner of this version lets it serve the client, loading
// nothing more (src/mcp/relay.ts): it finds that owner (or starts the background owner) now.
// This returns when there is no owner to relay to, or the owner went: the full server serves.
if (serveArgs) {
  const { findOwnerFor, relayIfOwned } = await import("./mcp/relay.js");
  await relayIfOwned(await findOwnerFor(serveArgs));
}
await import("./cli.js");
