import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import type { Worker } from "node:worker_threads";
import { monotonicMs } from "../kernel/time.js";
import { optimizeHotCode } from "../v8-mode.js";

/**
 * Starts children from worker threads instead of the main thread. `spawn` does not return
 * until the child has exec'd: libuv forks (copying the server's page tables) and then waits on
 * a pipe for the exec. On a loaded machine the child may wait many milliseconds for a CPU
 * before it execs, and the main thread with it: a fleet of 1,000 every-second jobs spent 29 %
 * of the server's main thread in `spawn` (issue 27), so timers fired late and tool calls
 * stalled. Here that wait is a worker's; the main thread only posts a message and gets the
 * child's output, exit and close back as events, as a ChildProcess would give them.
 *
 * A worker costs ~10 MB and ~0.2 s to start, so the first children of a quiet server start
 * on the main thread as before; past BURST in a second (a fleet firing) they move to the
 * workers, which then stay. Two workers, so that one child slow to exec does not hold up the
 * next. Each is referenced only while it has children running: a run in progress keeps the
 * process alive, as the child's pipes did.
 */

/** What the worker runs: plain CommonJS, so that it needs no file of its own in the bundle. */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { spawn } = require("node:child_process");
const children = new Map();
// Events go back in one message per turn of this thread's loop (see BATCHING below).
let out = [];
const send = (m) => {
  if (out.length === 0) setImmediate(flush);
  out.push(m);
};
const flush = () => {
  const batch = out;
  out = [];
  parentPort.postMessage(batch);
};
parentPort.on("message", (batch) => {
  for (const m of batch) handle(m);
});
function handle(m) {
  if (m.type === "destroy") {
    const c = children.get(m.id);
    if (c) for (const s of c.stdio) s?.destroy();
    return;
  }
  let child;
  try {
    child = spawn(m.file, m.args, { cwd: m.cwd, env: m.env, detached: true, stdio: m.extraFd ? ["pipe", "pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe"], windowsHide: true });
  } catch (err) {
    send({ type: "error", id: m.id, sync: true, code: err.code, message: err.message });
    return;
  }
  const id = m.id;
  child.on("error", (err) => send({ type: "error", id, code: err.code, message: err.message }));
  if (child.pid === undefined) return;
  children.set(id, child);
  send({ type: "spawned", id, pid: child.pid });
  child.stdio.forEach((s, fd) => {
    if (!s || fd === 0) return;
    s.on("data", (c) => send({ type: "data", id, fd, chunk: c }));
    s.on("end", () => send({ type: "end", id, fd }));
    s.on("error", () => {});
  });
  child.stdin.on("error", () => {});
  child.stdin.end(m.stdin ?? undefined);
  child.on("exit", (code, signal) => send({ type: "exit", id, code, signal }));
  child.on("close", () => {
    children.delete(id);
    send({ type: "close", id });
  });
}
`;

export interface SpawnRequest {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Written to the child's stdin, which is then closed. */
  stdin: string | null;
  /** A fourth pipe, the child's fd 3 (see ProcessSpec.statusFd). */
  extraFd: boolean;
}

/** The child's side of one pipe, as far as runProcess reads it. */
export class RemoteStream extends EventEmitter {
  constructor(private readonly onDestroy: () => void) {
    super();
  }
  destroy(): void {
    this.removeAllListeners();
    this.onDestroy();
  }
}

/**
 * A child started by a worker: emits "error" (before it has a pid), "exit" (code, signal) and
 * "close", and its stdout, stderr and fd 3 emit "data" and "end", as ChildProcess does.
 */
export class RemoteChild extends EventEmitter {
  pid: number | undefined;
  readonly stdio: RemoteStream[];
  constructor(destroy: () => void, fds: number) {
    super();
    this.stdio = Array.from({ length: fds }, () => new RemoteStream(destroy));
  }
}

type WorkerMessage =
  | { type: "spawned"; id: number; pid: number }
  | { type: "error"; id: number; sync?: boolean; code?: string; message: string }
  | { type: "data"; id: number; fd: number; chunk: Uint8Array }
  | { type: "end"; id: number; fd: number }
  | { type: "exit"; id: number; code: number | null; signal: string | null }
  | { type: "close"; id: number };

/**
 * BATCHING: each message between the threads has a fixed cost on both sides (a structured
 * clone, a MessagePort event, a wake-up), and a run of `true` made six (spawn, spawned, two
 * ends, exit, close): a fleet's message handling was 13 % of the main thread and its
 * postMessage calls another 5.6 % (issue 27). So each side sends what it has in one message
 * per turn: the main thread after the current synchronous work (a fleet timer starts its runs
 * in one go), the worker once per turn of its loop. Order within a child is kept.
 */
interface Spawner {
  worker: Worker;
  children: Map<number, RemoteChild>;
  /** Requests not yet posted; posted together from a microtask. */
  outbox: WorkerRequest[];
}

type WorkerRequest = ({ type: "spawn"; id: number } & SpawnRequest) | { type: "destroy"; id: number };

function post(s: Spawner, m: WorkerRequest): void {
  if (s.outbox.length === 0) {
    queueMicrotask(() => {
      const batch = s.outbox;
      s.outbox = [];
      s.worker.postMessage(batch);
    });
  }
  s.outbox.push(m);
}

const WORKERS = 2;
/**
 * node:worker_threads is loaded with the first worker, not at import: most servers never start
 * one (a quiet server spawns on the main thread), and the module with its internals is ~0.3 MB
 * of RSS (issue 27). Synchronously, as spawnerFor is.
 */
const loadBuiltin = createRequire(import.meta.url);
const spawners: Spawner[] = [];
let nextId = 1;
let turn = 0;

function spawnerFor(index: number): Spawner {
  let s = spawners[index];
  if (s) return s;
  const { Worker } = loadBuiltin("node:worker_threads") as typeof import("node:worker_threads");
  const worker = new Worker(WORKER_SOURCE, { eval: true, stdout: false, stderr: false });
  const children = new Map<number, RemoteChild>();
  s = { worker, children, outbox: [] };
  spawners[index] = s;
  worker.unref();
  worker.on("message", (batch: WorkerMessage[]) => {
    for (const m of batch) onMessage(s!, m);
  });
  worker.on("error", (err) => {
    // A worker that dies takes no child with it (they run detached), but their events are lost:
    // each waiting run ends as a spawn failure rather than waiting for ever.
    spawners[index] = undefined as unknown as Spawner;
    for (const [, child] of children) failChild(child, err.message);
    children.clear();
  });
  return s;
}

function failChild(child: RemoteChild, message: string): void {
  if (child.pid === undefined) child.emit("error", Object.assign(new Error(message), { code: "ESPAWNER" }));
  else {
    child.emit("exit", null, "SIGKILL");
    child.emit("close");
  }
}

function onMessage(s: Spawner, m: WorkerMessage): void {
  const child = s.children.get(m.id);
  if (!child) return;
  switch (m.type) {
    case "spawned":
      child.pid = m.pid;
      child.emit("spawn");
      break;
    case "error": {
      forget(s, m.id);
      const err = Object.assign(new Error(m.message), { code: m.code });
      child.emit("error", err);
      break;
    }
    case "data":
      child.stdio[m.fd]?.emit("data", Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
      break;
    case "end":
      child.stdio[m.fd]?.emit("end");
      break;
    case "exit":
      child.emit("exit", m.code, m.signal);
      break;
    case "close":
      forget(s, m.id);
      child.emit("close");
      break;
  }
}

function forget(s: Spawner, id: number): void {
  s.children.delete(id);
  if (s.children.size === 0) s.worker.unref();
}

/** What runProcess reads of a child, whichever thread started it. */
export type Child = Pick<EventEmitter, "on" | "once"> & {
  readonly pid?: number | undefined;
  readonly stdio: readonly ((Pick<EventEmitter, "on"> & { destroy(): void }) | null | undefined)[];
};

/** Children started in one second before the rest move to the workers. */
const BURST = 16;
let windowStart = -Infinity;
let inWindow = 0;

/**
 * Starts a child in its own process group (detached). Returns at once; the child emits
 * "spawn" once it has a pid, or "error" when it could not be started; its stdin gets
 * `req.stdin` and is closed.
 */
export function startChild(req: SpawnRequest): Child {
  const now = monotonicMs();
  if (now - windowStart > 1000) {
    windowStart = now;
    inWindow = 0;
  }
  if (++inWindow > BURST || spawners.length > 0) {
    // A fleet is firing: its bookkeeping is this process's hot code from now on (v8-mode.ts).
    optimizeHotCode();
    return spawnOffThread(req);
  }
  const child = spawn(req.file, req.args, {
    cwd: req.cwd,
    env: req.env,
    detached: true,
    stdio: req.extraFd ? ["pipe", "pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe"],
    windowsHide: true,
  });
  if (child.stdin) {
    // A child that exits without reading its stdin gives EPIPE here; that is its business.
    child.stdin.on("error", () => {});
    child.stdin.end(req.stdin ?? undefined);
  }
  return child;
}

let offThread = 0;

/** How many children were started from the workers so far (for tests and the bench). */
export function offThreadStarts(): number {
  return offThread;
}

/** The same from a worker thread. */
function spawnOffThread(req: SpawnRequest): RemoteChild {
  offThread++;
  const s = spawnerFor(turn++ % WORKERS);
  const id = nextId++;
  // The worker destroys every pipe of the child on one message, and has forgotten a child that
  // closed: the run's end destroys each pipe, usually after the close, so a fleet's runs sent
  // three messages each that did nothing.
  let destroySent = false;
  const destroy = () => {
    if (destroySent || !s.children.has(id)) return;
    destroySent = true;
    post(s, { type: "destroy", id });
  };
  const child = new RemoteChild(destroy, req.extraFd ? 4 : 3);
  s.children.set(id, child);
  s.worker.ref();
  post(s, { type: "spawn", id, ...req });
  return child;
}
