import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { CronApi } from "../core/api.js";
import { createServer } from "./server.js";

/**
 * Serves one client over stdin/stdout. When the client goes away (stdin ends or breaks)
 * `onGone` runs, so the server never lingers as an orphan.
 */
export async function serveStdio(api: CronApi, onGone: () => void): Promise<() => Promise<void>> {
  const server = createServer(api);
  const transport = new StdioServerTransport();
  let gone = false;
  const leave = () => {
    if (gone) return;
    gone = true;
    onGone();
  };
  process.stdin.once("end", leave);
  process.stdin.once("close", leave);
  process.stdin.once("error", leave);
  process.stdout.once("error", leave);
  transport.onclose = leave;
  await server.connect(transport);
  return async () => {
    gone = true;
    await server.close().catch(() => {});
  };
}
