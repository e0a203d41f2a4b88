import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { CronApi } from "../core/api.js";
import { LineLimiter, MAX_STDIO_MESSAGE_BYTES, tooLargeAnswer } from "./line-limit.js";
import { takeEarlyStdin, writeProtocolLine } from "./early-stdio.js";
import { createServer, preloadTools } from "./server.js";
import { logger } from "../log.js";

export { MAX_STDIO_MESSAGE_BYTES };

/**
 * Serves one client over stdin/stdout. When the client goes away (stdin ends or breaks)
 * `onGone` runs, so the server never lingers as an orphan.
 */
export async function serveStdio(api: CronApi, onGone: () => void): Promise<() => Promise<void>> {
  const server = createServer(api);
  const limiter = new LineLimiter(MAX_STDIO_MESSAGE_BYTES, (head, bytes, tail) => {
    const { message, answer } = tooLargeAnswer(head, bytes, tail);
    logger.log("warning", "stdio.too_large", message);
    if (answer) void transport.send(answer as JSONRPCMessage).catch(() => {});
  });
  const early = takeEarlyStdin();
  // Made before any input is fed to the limiter: a message over the limit in what is replayed
  // is answered through it at once (it was read before it existed: a ReferenceError that ended
  // the server).
  const transport = new StdioServerTransport(limiter as unknown as typeof process.stdin);
  // Answers already given (the early `initialize`), or to requests a relay made to set up this
  // server as its previous one was (src/mcp/relay.ts): each is dropped once. What is sent in one
  // turn leaves together (kernel/together.ts): a fleet's run events are a logging message each.
  const drop = new Set<string | number>(early?.dropAnswers ?? []);
  if (early?.answeredInitialize != null) drop.add(early.answeredInitialize);
  transport.send = async (message: JSONRPCMessage) => {
    if (drop.size && "id" in message && !("method" in message) && message.id !== undefined && drop.delete(message.id)) return;
    return writeProtocolLine(JSON.stringify(message), "turn");
  };
  // What the bin answered and read before this server existed (early-stdio.ts) is read again
  // first; the SDK's own answer to that `initialize` is the one answer not sent twice.
  if (early?.replay.length) limiter.write(early.replay);
  process.stdin.pipe(limiter);
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
