import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { CronApi } from "../core/api.js";
import { LineLimiter, sniffId } from "./line-limit.js";
import { takeEarlyStdin } from "./early-stdio.js";
import { createServer, preloadTools } from "./server.js";
import { logger } from "../log.js";

/** One message at most; the SDK's own buffer holds 10 MiB, and each message is handed to it alone. */
export const MAX_STDIO_MESSAGE_BYTES = 8 * 1024 * 1024;

/**
 * Serves one client over stdin/stdout. When the client goes away (stdin ends or breaks)
 * `onGone` runs, so the server never lingers as an orphan.
 */
export async function serveStdio(api: CronApi, onGone: () => void): Promise<() => Promise<void>> {
  const server = createServer(api);
  const limiter = new LineLimiter(MAX_STDIO_MESSAGE_BYTES, (head, bytes, tail) => {
    const id = sniffId(head, tail);
    const message = `Message too large: ${bytes} bytes; one message may have at most ${MAX_STDIO_MESSAGE_BYTES} bytes. It was not read.`;
    logger.log("warning", "stdio.too_large", message);
    // A request gets its error answer; a notification (no id) cannot be answered.
    if (id !== null) void transport.send({ jsonrpc: "2.0", id, error: { code: -32600, message } }).catch(() => {});
  });
  // What the bin answered and read before this server existed (early-stdio.ts) is read again
  // first; the SDK's own answer to that `initialize` is the one answer not sent twice.
  const early = takeEarlyStdin();
  if (early?.replay.length) limiter.write(early.replay);
  process.stdin.pipe(limiter);
  const transport = new StdioServerTransport(limiter as unknown as typeof process.stdin);
  let answered = early?.answeredInitialize ?? null;
  if (answered !== null) {
    const send = transport.send.bind(transport);
    transport.send = async (message: JSONRPCMessage) => {
      if (answered !== null && "id" in message && message.id === answered && "result" in message) {
        answered = null;
        return;
      }
      return send(message);
    };
  }
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
  // The client quit before this server took over: what it asked is still read, then it goes.
  if (early?.ended) setImmediate(leave);
  // Its first tool call would otherwise load them.
  else if (early?.answeredInitialize != null) preloadTools();
  return async () => {
    gone = true;
    await server.close().catch(() => {});
  };
}
