import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { EventEmitter } from "node:events";
const t0 = performance.now();
const { createServer } = await import("../dist/mcp/server.js");
const t1 = performance.now();
const api = { events: new EventEmitter() };
const server = createServer(api);
const t2 = performance.now();
const [a, b] = InMemoryTransport.createLinkedPair();
await server.connect(a);
const c = new Client({ name: "x", version: "1" });
await c.connect(b);
const t3 = performance.now();
for (let i = 0; i < 4; i++) { const t = performance.now(); const r = await c.listTools(); console.log("tools/list", i, (performance.now() - t).toFixed(1), "ms", JSON.stringify(r).length, "bytes"); }
console.log("import server.js", (t1 - t0).toFixed(0), "createServer", (t2 - t1).toFixed(0), "connect", (t3 - t2).toFixed(0));
