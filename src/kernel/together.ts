/**
 * Writes to one stream made close together leave in one system call. A server at capacity
 * writes a line per run event to its client (MCP logging), to stderr and to the reaper's pipe,
 * and the runs of a fleet start and end in batches (a fleet timer fires its due jobs in one go,
 * a spawner thread reports a turn's children in one message): one write(2) a line was 7.5 % of
 * a Postgres-backed process's main thread at capacity (issue 22). A stream held here is corked
 * and uncorked once the current work is done, so Node hands what was written meanwhile to the
 * kernel together (writev); the order of writes to the stream is kept, whoever writes.
 *
 * `when`:
 * - "turn" uncorks after this turn of the event loop (setImmediate): for stdout and stderr,
 *   where a line may wait that long;
 * - "tick" uncorks once the current synchronous work and its process.nextTick callbacks are
 *   done.
 *
 * At exit (process.exit, an uncaught exception) every held stream is uncorked, which writes at
 * once what the kernel takes (stdout and stderr pipes on Linux are written synchronously). A
 * process killed outright (SIGKILL, V8 out of memory) loses what this turn held: what must
 * not wait goes out with flushNow.
 */
interface Corkable {
  cork(): void;
  uncork(): void;
  write(chunk: string): boolean;
}

interface Drainable extends Corkable {
  once(event: "drain", listener: () => void): unknown;
}

const held = new Set<Corkable>();
let exitHooked = false;

/** Hands what `stream` holds to the kernel now (a no-op when it holds nothing). */
export function flushNow(stream: Corkable): void {
  if (!held.delete(stream)) return;
  stream.uncork();
}

function flushAll(): void {
  for (const stream of [...held]) flushNow(stream);
}

/** Holds what is written to `stream` from now until `when` comes (see above). */
export function holdForTurn(stream: Corkable, when: "turn" | "tick" = "turn"): void {
  if (held.has(stream)) return;
  held.add(stream);
  stream.cork();
  if (!exitHooked) {
    exitHooked = true;
    process.on("exit", flushAll);
  }
  if (when === "tick") process.nextTick(flushNow, stream);
  else setImmediate(flushNow, stream);
}

/** Writes `chunk` to `stream`, together with the other writes to it made before `when` comes. */
export function writeTogether(stream: Corkable, chunk: string, when: "turn" | "tick" = "turn"): boolean {
  holdForTurn(stream, when);
  return stream.write(chunk);
}

/** Per stream, the wait for its next 'drain' that every write held back shares. */
const draining = new WeakMap<Drainable, Promise<void>>();

/**
 * Writes `chunk` with the others of this turn (writeTogether) and resolves once the stream has
 * taken it: at once, or when the stream drains. Writes held back wait on one 'drain' listener
 * between them: a listener each (the SDK's stdio transport) passed Node's limit of ten when a
 * fleet's run events met a client reading slowly (MaxListenersExceededWarning on stderr).
 */
export function writeTogetherAndWait(stream: Drainable, chunk: string, when: "turn" | "tick" = "turn"): Promise<void> {
  if (writeTogether(stream, chunk, when)) return Promise.resolve();
  let wait = draining.get(stream);
  if (!wait) {
    wait = new Promise<void>((resolve) =>
      stream.once("drain", () => {
        draining.delete(stream);
        resolve();
      }),
    );
    draining.set(stream, wait);
  }
  return wait;
}
