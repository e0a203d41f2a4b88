#!/usr/bin/env node
import module from "node:module";
import v8 from "node:v8";
import { answerEarly, earlyInitialized, stdioServeArgs } from "./mcp/early-stdio.js";
import { startServeV8Mode } from "./v8-mode.js";

const argv = process.argv.slice(2);
// Before anything else runs: what runs at start-up is never hot (src/v8-mode.ts).
startServeV8Mode(argv);

/** How long the early answers wait for a client's first messages when a relay will carry the rest. */
const RELAY_EARLY_WAIT_MS = 10_000;
/** A client that began its session and asks nothing more for this long is relayed as it is. */
const RELAY_AFTER_INITIALIZE_MS = 100;

// A stdio client's initialize and tools/list are answered now, from what the build prepared,
// before the rest loads (src/mcp/early-stdio.ts). A relay has nothing else to load: it waits for them.
const serveArgs = stdioServeArgs(argv);
const early = answerEarly(argv, serveArgs ? RELAY_EARLY_WAIT_MS : undefined);

// A stdio server whose data dir has an owner of this version lets it serve the client, loading
// nothing more (src/mcp/relay.ts). It looks for that owner (or starts the background owner)
// meanwhile: loaded, not imported, so that the first answers wait for none of it.
const relay = serveArgs ? import("./mcp/relay.js").then((m) => ({ relayIfOwned: m.relayIfOwned, link: m.findOwnerFor(serveArgs) })) : null;
const link = relay ? relay.then((r) => r.link) : Promise.resolve(null);

// V8 grows the young generation from 1 MB up to 16 MB semi-spaces as a server allocates: at
// 1,000 jobs that alone was ~8 MB of RSS (75 → 67 MB), and every fork copies the page tables
// of it. Kept at its starting size, a scavenge runs more often but stays short; measured in
// `npm run bench` (memory, fire): no cost to start-up or the fleet's lateness.
v8.setFlagsFromString("--semi-space-growth-factor=1");

// Node ≥ 22.1 keeps compiled code on disk: every later start skips most of compiling the
// bundle (a client spawns a stdio server on each start). It is turned on before the CLI's
// own imports, so that they are cached too; a no-op on Node 20.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
// Not while the early answers are given: the load would hold them (src/mcp/early-stdio.ts).
// With no owner to relay to, the rest loads at once.
await Promise.race([
  early,
  link.then((owner) => (owner ? Promise.race([early, earlyInitialized.then(() => new Promise((r) => setTimeout(r, RELAY_AFTER_INITIALIZE_MS)))]) : undefined)),
]);
// Returns when there is no owner to relay to, or the owner went: the full server serves.
if (relay) await (await relay).relayIfOwned(await link);
await import("./cli.js");
