/**
 * Writes to one stream made close together leave in one system call. A server at capacity
 * writes a line per run event to its client (MCP logging), to stderr and to the reaper's pipe,
 * and the runs of a fleet start and end in batches (a fleet timer fires its due jobs in one go,
 * a spawner thread reports a turn's children in one message): one write(2) a line was 7.5 % of
 * a Postgres-backed process's main thread at capacity (issue 22). A stream written through here
 * is corked at the first write and uncorked once the current work is done, so Node hands the
 * lines to the kernel together (writev); the order of writes to the stream is kept.
 *
 * `when`:
 * - "turn" uncorks after this turn of the event loop (setImmediate): for stdout and stderr,
 *   where a line may wait that long;
 * - "tick" uncorks once the current synchronous work and its process.nextTick callbacks are
 *   done: for the reaper's pipe, whose lines must leave before anything else can happen.
 *
 * At exit every corked stream is uncorked synchronously (pipes and files are written
 * synchronously on POSIX), so lines written just before process.exit() are not lost.
 */
interface Corkable {
  cork(): void;
  uncork(): void;
  write(chunk: string): boolean;
}

const corked = new Set<Corkable>();
let exitHooked = false;

function release(stream: Corkable): void {
  if (!corked.delete(stream)) return;
  stream.uncork();
}

function releaseAll(): void {
  for (const stream of [...corked]) release(stream);
}

/** Writes `chunk` to `stream`, with the other writes to it made before `when` comes (see above). */
export function writeTogether(stream: Corkable, chunk: string, when: "turn" | "tick" = "turn"): boolean {
  if (!corked.has(stream)) {
    corked.add(stream);
    stream.cork();
    if (!exitHooked) {
      exitHooked = true;
      process.on("exit", releaseAll);
    }
    if (when === "tick") process.nextTick(release, stream);
    else setImmediate(release, stream);
  }
  return stream.write(chunk);
}
