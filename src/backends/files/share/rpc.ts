import { timingSafeEqual } from "node:crypto";
import { chmodSync, renameSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import { API_METHODS, READ_METHODS, actAsChecked, claimsPerson, type ApiMethod, type CronApi, type PersonCheck } from "../../../core/api.js";
import { AgentCronError, UnavailableError, codeOf, errorFromCode, errorMessage, kindOf, type Fence } from "../../../kernel/errors.js";
import type { AppEventBus, AppEvents } from "../../../core/events.js";
import { OWNER_STOPPED_MID_CALL } from "./owner-file.js";
import { checkSocketPeer } from "./peer.js";

/**
 * The local socket between processes sharing a data dir: newline-delimited JSON.
 * A caller first proves it may use the socket with {auth: token} (the token is in the owner's
 * mode-600 owner.json, which a sandboxed run cannot see) and is greeted with {hello}.
 * Requests {id, method, args}; replies {id, result} or {id, error, user}; events
 * {event, args} pushed by the owner to every follower.
 */

/** `retry`: the owner is stopping and did not apply the call; the next owner should take it. */
type Reply = { id: number; result?: unknown; error?: string; code?: string; user?: boolean; unauthorized?: boolean; retry?: boolean };
type EventMsg = { event: keyof AppEvents; args: unknown[] };

const MAX_LINE = 64 * 1024 * 1024;
/** A connection that has not sent its token within this long is closed. */
const AUTH_TIMEOUT_MS = 5_000;
const EVENT_NAMES: (keyof AppEvents)[] = ["job", "run", "notice", "delivery"];

/** Reads newline-delimited JSON; `detach` stops and gives back what was read past the last line. */
function onLines(socket: net.Socket, handle: (msg: unknown) => void): { detach(): string } {
  let buf = "";
  let detached = false;
  socket.setEncoding("utf8");
  const onData = (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE) {
      socket.destroy(new Error("message too large"));
      return;
    }
    let nl: number;
    while (!detached && (nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line) continue;
      try {
        handle(JSON.parse(line));
      } catch {
        socket.destroy(new Error("malformed message"));
        return;
      }
    }
  };
  socket.on("data", onData);
  return {
    detach() {
      detached = true;
      // Held until the next reader is there: a flowing socket with no reader drops what comes.
      socket.pause();
      socket.off("data", onData);
      const rest = buf;
      buf = "";
      return rest;
    },
  };
}

const send = (socket: net.Socket, msg: unknown) => {
  if (!socket.destroyed && socket.writable) socket.write(JSON.stringify(msg) + "\n");
};

export interface ServeOptions {
  /** What a caller must send first. */
  token: string;
  /** Checked before each call: a deposed owner answers nothing and sends callers on. */
  fence: Fence;
  /** Who is at the other end, for the calls only a person may make (default: the kernel's word, peer.ts). */
  checkPeer?: (socket: net.Socket) => Promise<PersonCheck>;
  /**
   * A newer agent-cron asks this (background) owner to hand over: called once, after the
   * answer with the time it stopped taking occurrences has gone out. Absent: refused.
   */
  onHandOver?: () => void;
  /**
   * A stdio relay (src/mcp/relay.ts) asks for an MCP session of its own: from the greeting on,
   * the connection carries its client's JSON-RPC lines both ways (`rest`: what it sent past the
   * greeting). Absent: the relay is greeted as an API caller and serves its client itself.
   */
  onMcpSession?: (socket: net.Socket, rest: string, checkPeer: () => Promise<PersonCheck>) => McpSessionHandle;
}

/** An MCP session served over the socket, as serveApi's stop needs it. */
export interface McpSessionHandle {
  /**
   * Takes no request from here on (a relay sends none after `stopping`; one already on its way
   * is dropped unapplied, and the relay asks the next server), and settles once every request
   * the session took is answered.
   */
  drain(): Promise<void>;
  /** Ends the session and its connection. */
  close(): void;
}

/**
 * How long a stopping owner waits for its relayed MCP sessions' calls before it closes them: a
 * stdio owner whose client quit is gone within 1 s (SPEC §1). A call cut off is asked again of
 * the next server when it changes nothing, else answered with an error that says to check.
 */
const MCP_DRAIN_MS = 500;

/** The one call outside the API: a newer agent-cron asks the owner to hand the data dir over. */
const HAND_OVER = "handOver";

const sameSecret = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * Stops serving: no new caller, the calls in flight answered. Relayed MCP sessions end too,
 * unless kept: an owner taken over while it stalled forwards from then on, and a session it
 * serves goes on through it (its calls reach the new owner); a later call without the option
 * ends them.
 */
export type StopServing = (opts?: { keepMcpSessions?: boolean }) => Promise<void>;

/** Serves the owner's API to followers and the CLI; returns a function that stops serving. */
export async function serveApi(api: CronApi, socketPath: string, opts: ServeOptions): Promise<StopServing> {
  const sockets = new Set<net.Socket>();
  const mcpSessions = new Set<McpSessionHandle>();
  const mcpSockets = new WeakMap<McpSessionHandle, net.Socket>();
  const relayedSockets = new Set<net.Socket>();
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  /** Every connection, greeted or not: stopping ends them all, so close() never waits on one. */
  const accepted = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    if (stopping) {
      socket.end(JSON.stringify({ stopping: true }) + "\n");
      return;
    }
    accepted.add(socket);
    socket.on("close", () => accepted.delete(socket));
    socket.on("error", () => socket.destroy());
    let authed = false;
    // Asked once per connection, and only when a call needs a person (it spawns `ss`).
    let peer: Promise<PersonCheck> | null = null;
    const checkPeer = opts.checkPeer ?? checkSocketPeer;
    // A caller proves itself at once or is let go.
    const authTimer = setTimeout(() => socket.destroy(), AUTH_TIMEOUT_MS);
    authTimer.unref();
    const lines = onLines(socket, (raw) => {
      if (!authed) {
        clearTimeout(authTimer);
        const auth = (raw as { auth?: unknown }).auth;
        if (typeof auth !== "string" || !sameSecret(auth, opts.token)) {
          socket.end(JSON.stringify({ denied: "This socket serves only agent-cron processes that can read the data dir's owner.json." }) + "\n");
          return;
        }
        if (stopping) {
          socket.end(JSON.stringify({ stopping: true }) + "\n");
          return;
        }
        authed = true;
        if ((raw as { mcp?: unknown }).mcp !== undefined && opts.onMcpSession) {
          // From here the connection is the relay's client's: its lines are JSON-RPC, not calls.
          send(socket, { hello: true, mcp: true });
          const rest = lines.detach();
          const session = opts.onMcpSession(socket, rest, () => (peer ??= checkPeer(socket)));
          mcpSessions.add(session);
          mcpSockets.set(session, socket);
          relayedSockets.add(socket);
          socket.on("close", () => {
            mcpSessions.delete(session);
            relayedSockets.delete(socket);
          });
          return;
        }
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        // A unix-socket connect succeeds while the connection still waits in the backlog; the
        // hello tells the follower that we really took it, so its calls will be answered.
        send(socket, { hello: true });
        return;
      }
      const { id, method, args } = raw as { id: number; method: ApiMethod; args: unknown };
      if (stopping) return send(socket, { id, error: "The owner is stopping.", retry: true });
      if ((method as string) === HAND_OVER) {
        if (!opts.onHandOver) return send(socket, { id, error: "This owner does not hand over (it was not started as a background owner).", user: true });
        // From here no occurrence is taken: the answer says since when, for the next owner.
        send(socket, { id, result: { stopped_at: Date.now() } });
        const handOver = opts.onHandOver;
        opts.onHandOver = undefined;
        setImmediate(handOver);
        return;
      }
      if (!API_METHODS.includes(method)) return send(socket, { id, error: `Unknown method ${method}`, user: false });
      try {
        opts.fence();
      } catch (err) {
        return send(socket, { id, error: errorMessage(err), code: codeOf(err) ?? undefined, retry: true });
      }
      // The token proves only that the caller can read owner.json, which a run without a
      // sandbox can; what needs a person is checked against the caller's process itself.
      const checked = claimsPerson(method, args) ? (peer ??= checkPeer(socket)).then((c) => actAsChecked(method, args, c)) : Promise.resolve(args);
      const call = checked
        .then((a) => (api[method] as (a: unknown) => Promise<unknown>).call(api, a))
        .then(
          (result) => send(socket, { id, result }),
          // The code says what the error is; the flags are for a follower older than codes.
          (err) => {
            const code = codeOf(err);
            send(socket, {
              id,
              error: errorMessage(err),
              code: code ?? undefined,
              user: kindOf(err) === "user",
              unauthorized: code === "AC_UNAUTHORIZED",
              retry: code === "AC_LOCK_LOST",
            });
          },
        );
      inFlight.add(call);
      void call.finally(() => inFlight.delete(call));
    });
  });
  const forwarders = EVENT_NAMES.map((event) => {
    const fn = (...args: unknown[]) => {
      for (const s of sockets) send(s, { event, args });
    };
    api.events.on(event, fn as never);
    return () => api.events.off(event, fn as never);
  });
  // Bound under a name of its own, then renamed into place: closing a server unlinks the name
  // it was bound to, and the well-known name may by then be a newer owner's socket.
  const boundAt = `${socketPath}.${opts.token.slice(0, 8)}`;
  rmSync(boundAt, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(boundAt, () => resolve());
  });
  chmodSync(boundAt, 0o600);
  renameSync(boundAt, socketPath);
  const identity = fileIdentity(socketPath);
  let stopped: Promise<void> | null = null;
  const stopServing = async () => {
    // Answer what was asked before closing, so no caller is left not knowing whether its
    // change was applied; later calls are told to go to the next owner.
    stopping = true;
    // No new followers from here on, so every connected one hears that we are stopping. (Not
    // waited for: the server's close waits for every connection, a relayed one included, which
    // may go on or end only after this.)
    server.close();
    for (const s of sockets) send(s, { stopping: true });
    await Promise.allSettled([...inFlight]);
    forwarders.forEach((off) => off());
    for (const s of sockets) s.end();
    for (const s of accepted) if (!sockets.has(s) && !relayedSockets.has(s)) s.destroy();
    if (identity !== null && sameFile(socketPath, identity)) rmSync(socketPath, { force: true });
  };
  return async ({ keepMcpSessions = false } = {}) => {
    stopped ??= stopServing();
    await stopped;
    if (!keepMcpSessions) await Promise.allSettled([...mcpSessions].map((session) => endRelayedSession(mcpSockets.get(session), session)));
  };
}

/**
 * Ends a relayed MCP session: it hears that the owner stops and sends nothing more; what it
 * asked before is answered, for up to MCP_DRAIN_MS, and it is told whether all was
 * (`drained`): then what is still unanswered was never applied (src/mcp/relay.ts).
 */
async function endRelayedSession(socket: net.Socket | undefined, session: McpSessionHandle): Promise<void> {
  if (socket) send(socket, { stopping: true });
  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    session.drain().then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), MCP_DRAIN_MS);
    }),
  ]);
  clearTimeout(timer);
  if (socket && drained) send(socket, { drained: true });
  session.close();
}

/** True while `file` is still the one whose identity was taken; false when gone or unreadable. */
export function sameFile(file: string, identity: string): boolean {
  try {
    return fileIdentity(file) === identity;
  } catch {
    return false;
  }
}

/**
 * A file's identity, inode and birth time (ext4 reuses a freed inode at once, so the inode
 * alone would not tell a new owner's lock or socket from ours); null when it is gone. Other
 * I/O errors are thrown: they say nothing about who owns the file.
 */
export function fileIdentity(file: string): string | null {
  try {
    const st = statSync(file, { bigint: true });
    return `${st.ino}:${st.birthtimeNs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** A connection to the owner. Calls fail with a clear error if the owner goes away mid-call. */
export class RemoteApiClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private closedHandlers: (() => void)[] = [];
  /** The owner said it is stopping: it answers what it accepted, and applies nothing after. */
  private ownerStopping = false;

  /** True once the owner said it is stopping, or the connection is gone. */
  get stopping(): boolean {
    return this.ownerStopping || this.socket.destroyed;
  }
  private greeted?: () => void;
  private refused?: (err: Error) => void;

  private constructor(
    private readonly socket: net.Socket,
    events: AppEventBus,
  ) {
    onLines(socket, (raw) => {
      const msg = raw as Reply & EventMsg & { stopping?: boolean; hello?: boolean; denied?: string };
      if (msg.denied) {
        this.refused?.(new Error(msg.denied));
        return;
      }
      if (msg.hello) {
        this.greeted?.();
        return;
      }
      if (msg.stopping) {
        this.ownerStopping = true;
        return;
      }
      if (msg.event) {
        (events.emit as (e: string, ...a: unknown[]) => boolean)(msg.event, ...msg.args);
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error === undefined) p.resolve(msg.result);
      // The owner lost the data dir before applying the call: it goes to the next owner.
      else if (msg.retry || msg.code === "AC_LOCK_LOST") p.reject(new OwnerGoneError(false));
      // An owner older than codes said only user/unauthorized.
      else p.reject(errorFromCode(msg.code ?? (msg.unauthorized ? "AC_UNAUTHORIZED" : msg.user ? "AC_BAD_REQUEST" : undefined), msg.error));
    });
    socket.on("close", () => {
      // After a graceful stop, a call still unanswered reached the owner too late to be
      // applied; after a crash, it may have been.
      for (const p of this.pending.values()) p.reject(new OwnerGoneError(!this.ownerStopping));
      this.pending.clear();
      for (const h of this.closedHandlers) h();
    });
    socket.on("error", () => {});
  }

  /** Resolves once the owner has greeted us; an owner that is stopping or gone rejects. */
  static connect(socketPath: string, events: AppEventBus, token: string): Promise<RemoteApiClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      const client = new RemoteApiClient(socket, events);
      const fail = (err?: Error) => reject(err ?? new Error("the owner closed the connection"));
      client.refused = (err) => {
        fail(err);
        socket.destroy();
      };
      send(socket, { auth: token });
      socket.once("error", fail);
      socket.once("close", () => fail());
      // A stalled owner's kernel still accepts the connection; only the greeting tells.
      const timer = setTimeout(() => {
        fail(
          new UnavailableError(
            `The agent-cron process that owns the data dir did not answer within ${CALL_TIMEOUT_MS / 1000} s; it may be stalled. Try again.`,
          ),
        );
        socket.destroy();
      }, CALL_TIMEOUT_MS);
      timer.unref();
      client.greeted = () => {
        clearTimeout(timer);
        socket.removeListener("error", fail);
        resolve(client);
      };
    });
  }

  /** Asks the owner to hand the data dir over (see ServeOptions.onHandOver). */
  async handOver(): Promise<{ stopped_at: number }> {
    return (await this.call(HAND_OVER as ApiMethod, {})) as { stopped_at: number };
  }

  onClose(handler: () => void): void {
    this.closedHandlers.push(handler);
  }

  call(method: ApiMethod, args: unknown): Promise<unknown> {
    if (this.socket.destroyed || this.ownerStopping) return Promise.reject(new OwnerGoneError(false));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // An owner that stalls (stopped, swapping) must not hang its followers and the CLI
      // for ever; waitRun waits for a run by design, as long as the run takes.
      const timer =
        method === "waitRun"
          ? null
          : setTimeout(() => {
              if (!this.pending.delete(id)) return;
              reject(
                new UnavailableError(
                  `The agent-cron process that owns the data dir did not answer ${method} within ${CALL_TIMEOUT_MS / 1000} s; it may be stalled. ` +
                    (READ_METHODS.has(method) ? "Try again." : "The change may still be applied when it wakes; check before trying again."),
                ),
              );
            }, CALL_TIMEOUT_MS);
      timer?.unref();
      this.pending.set(id, {
        resolve: (v) => {
          if (timer) clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          if (timer) clearTimeout(timer);
          reject(e);
        },
      });
      send(this.socket, { id, method, args });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * The owner went away. `mayHaveApplied` is false when the call certainly was not applied
 * (refused while stopping, or never sent), so it can go to the next owner safely.
 */
/** A call the owner does not answer in this long fails with a sentence (env AGENT_CRON_CALL_TIMEOUT_MS for tests). */
const CALL_TIMEOUT_MS = Number(process.env.AGENT_CRON_CALL_TIMEOUT_MS) > 0 ? Number(process.env.AGENT_CRON_CALL_TIMEOUT_MS) : 30_000;

export class OwnerGoneError extends AgentCronError {
  constructor(readonly mayHaveApplied: boolean) {
    super("AC_OWNER_GONE", mayHaveApplied ? OWNER_STOPPED_MID_CALL : "The agent-cron process that owned the data dir stopped; try again.");
  }
}
