import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ListToolsResultSchema } from "@modelcontextprotocol/sdk/types.js";
const [cli, how, ...extra] = process.argv.slice(2);
const res = [];
for (let i = 0; i < 7; i++) {
  const t = new StdioClientTransport({ command: process.execPath, args: [...extra, cli, "serve", "--data-dir", "/tmp/ct-" + Date.now() + Math.random(), "--config", "/tmp/ctcfg.json"], stderr: "ignore" });
  const c = new Client({ name: "x", version: "1" });
  const t0 = performance.now(); await c.connect(t);
  if (how === "sdk") await c.listTools(); else await c.request({ method: "tools/list", params: {} }, ListToolsResultSchema);
  res.push(performance.now() - t0); await c.close();
}
res.sort((a, b) => a - b);
console.log(cli.padEnd(28), how, extra.join(" ").padEnd(26), "median", res[3].toFixed(0), "min", res[0].toFixed(0));
