#!/usr/bin/env node
import module from "node:module";

// Node ≥ 22.1 keeps compiled code on disk: every later start skips most of compiling the
// bundle (a client spawns a stdio server on each start). It is turned on before the CLI's
// own imports, so that they are cached too; a no-op on Node 20.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
await import("./cli.js");
