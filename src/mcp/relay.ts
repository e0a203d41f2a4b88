import { mkdirSync, readFileSync, statSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { LOCK_STALE_MS, OWNER_STOPPED_MID_CALL, configDigest, isAlive, readOwnerFile, socketPathFor } from "../backends/files/share/owner-file.js";
import { defaultDataDir } from "../kernel/data-dir.js";
import { lazily } from "../kernel/lazy.js";
import { logger } from "../log.js";
import { VERSION } from "../version.js";
import { earlyInitialize, handOverStdin, preparedAnswers, takeEarlyStdin, writeProtocolLine, type EarlyStdin } from "./early-stdio.js";
import { LineFramer, MAX_STDIO_MESSAGE_BYTES, tooLargeAnswer } from "./line-limit.js";

/**
 * The stdio relay: a client's `agent-cron serve` that finds the data dir owned by a server of
 * its own version, with its own config, lets that owner serve its client. It carries the
 * client's JSON-RPC lines to an MCP session in the owner (over the owner's socket, rpc.ts) and
 * the answers back, and loads nothing else of agent-cron: no SDK, no tools, no store. Under
 * always_on "daemon" every client's server is a follower, so this is what most clients run:
 * 57 → ~45 MB of RSS and no module load after the first answers (issue 27; README, Benchmarks).
 *
 * Whenever it cannot relay (no owner and always_on "client", another version, another config,
 * the postgres store, an owner that does not greet), the full server starts as before. When the
 * owner goes while it relays, the full server takes over the client mid-session: it is given
 * the session as the client set it up (initialize, subscriptions, log level), what the client
 * sent since, and the requests the old owner left unanswered and had not applied: a stopping
 * owner answers what it took and says so (`drained`); after a crash only reads are asked again,
 * and a change that may have been made is answered with an error that says to check.
 */

/** How long a relay waits for a background owner it started before the full server starts. */
const START_OWNER_MS = Number(process.env.AGENT_CRON_START_OWNER_MS) > 0 ? Number(process.env.AGENT_CRON_START_OWNER_MS) : 10_000;
/** An owner that does not greet within this long is left to the full server (which says so). */
const GREET_MS = 5_000;
const POLL_MS = 20;
/**
 * The tools that change nothing, as the build's tools/list says (`readOnlyHint`): one in flight
 * when the owner died is asked again of the next server. A relay runs only with those answers.
 */
const readOnlyTools = lazily(
  () =>
    new Set(
      (preparedAnswers()?.tools ?? []).flatMap((t) => {
        const tool = t as { name?: unknown; annotations?: { readOnlyHint?: unknown } };
        return tool.annotations?.readOnlyHint === true && typeof tool.name === "string" ? [tool.name] : [];
      }),
    ),
);
const READ_METHODS = new Set([
  "ping",
  "tools/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "resources/subscribe",
  "resources/unsubscribe",
  "prompts/list",
  "prompts/get",
  "completion/complete",
  "logging/setLevel",
]);
const REPLAY_ID = "agent-cron-relay-";

interface Plan {
  dataDir: string;
  /** The --config a person gave, resolved; null for the data dir's own. */
  explicitConfig: string | null;
  digest: string;
  alwaysOn: "daemon" | "client";
}

/** An owner's socket that greeted this relay as one: its lines are the client's session from here. */
interface OwnerLink {
  socket: net.Socket;
  /** What the owner sent past its greeting. */
  rest: string;
  dataDir: string;
  /** The owner's pid, as owner.json says. */
  pid: number;
}

/**
 * Called by the bin with the early answers: the owner's socket, greeted, when there is one to
 * relay to (the background owner started first when nobody owns the data dir, under always_on
 * "daemon"); null when this process must serve its client itself.
 */
export async function findOwnerFor(serveArgs: { dataDir?: string; config?: string }): Promise<OwnerLink | null> {
  const plan = planRelay(serveArgs);
  return plan ? findOwner(plan).catch(() => null) : null;
}

/**
 * Relays the client's session to the owner once the early answers are given. Returns at once
 * when there is nothing to relay to; otherwise only when the owner went and the full server must
 * take over (its state handed over, early-stdio.ts). The process ends when its client does.
 */
export async function relayIfOwned(link: OwnerLink | null): Promise<void> {
  if (!link) return;
  // The client must have begun its session here (initialize answered early); anything else is
  // left to the full server, which knows what to answer.
  if (earlyInitialize() === null) {
    link.socket.destroy();
    return;
  }
  const early = takeEarlyStdin();
  if (!early || early.ended) {
    link.socket.destroy();
    if (early) handOverStdin(early);
    return;
  }
  await new Relay(link, early).done;
}

/** What can be known without the owner: null when the full server must serve. */
function planRelay(args: { dataDir?: string; config?: string }): Plan | null {
  const dataDir = path.resolve(args.dataDir ?? defaultDataDir());
  const given = args.config ?? process.env.AGENT_CRON_CONFIG;
  const configFile = given ? path.resolve(given) : path.join(dataDir, "config.json");
  let text: string | null;
  try {
    // A FIFO or a device would hang the read; the full server says what is wrong with it.
    if (!statSync(configFile).isFile()) return null;
    text = readFileSync(configFile, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT" || given) return null;
    text = null;
  }
  let raw: Record<string, unknown> = {};
  if (text !== null) {
    try {
      raw = JSON.parse(text);
    } catch {
      return null;
    }
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) return null;
  }
  // A fleet on postgres has no owner; a metrics port is served by a full server.
  const store = raw.store as { type?: unknown } | undefined;
  if ((store && store.type !== "files") || raw.metrics_port !== undefined) return null;
  const alwaysOn = process.env.AGENT_CRON_ALWAYS_ON || raw.always_on || "daemon";
  if (alwaysOn !== "daemon" && alwaysOn !== "client") return null;
  if (raw.log_format === "json") logger.setFormat("json");
  return { dataDir, explicitConfig: given ? configFile : null, digest: configDigest(text), alwaysOn };
}

/**
 * The owner of the data dir, if it is a server of this version started with this config. Under
 * always_on "daemon", when nobody owns the data dir, starts the background owner and waits for
 * it, as the full server would (host.ts seat).
 */
async function findOwner(plan: Plan): Promise<OwnerLink | null> {
  const began = Date.now();
  let startedAt: number | undefined;
  let startedPid = -1;
  for (;;) {
    const info = readOwnerFile(plan.dataDir);
    if (info && isAlive(info.pid)) {
      if (info.version !== VERSION || info.role !== "server" || info.config_sha256 !== plan.digest) return null;
      const link = await greet(socketPathFor(plan.dataDir), info.token);
      if (link === "refused") return null;
      if (link) return { ...link, dataDir: plan.dataDir, pid: info.pid };
      // Not serving yet (an owner loads its store before it opens its socket), or stopping.
      if (Date.now() - began > START_OWNER_MS) return null;
      await new Promise((r) => setTimeout(r, POLL_MS));
      continue;
    }
    if (plan.alwaysOn !== "daemon") return null;
    if (startedAt === undefined) {
      if (!lockHeld(plan.dataDir)) {
        // Private to the user, as the full server makes it (cli.ts setup).
        mkdirSync(plan.dataDir, { recursive: true, mode: 0o700 });
        const { startBackgroundOwner } = await import("../backends/files/share/background.js");
        startedPid = startBackgroundOwner({ dataDir: plan.dataDir, configPath: plan.explicitConfig, env: process.env });
        startedAt = Date.now();
      } else if (Date.now() - began > START_OWNER_MS) return null;
    } else if (Date.now() - startedAt > START_OWNER_MS || (startedPid > 0 && !isAlive(startedPid) && !lockHeld(plan.dataDir))) {
      // It did not come, or it ended (a config it refuses): the full server takes it from here.
      handOverStartedAt = startedAt;
      return null;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Set when this relay started a background owner that did not come; the full server waits only what is left. */
let handOverStartedAt: number | undefined;

/** True once a relay handed its client over to the full server (its owner went). */
let relayed = false;

/** Whether the full server takes a client over from a relay, mid-session. */
export function takingOverFromRelay(): boolean {
  return relayed;
}

/** Tells the full server, when it serves instead, about a background owner this process started. */
export function ownerStartedByRelay(): number | undefined {
  return handOverStartedAt;
}

function lockHeld(dataDir: string): boolean {
  try {
    return Date.now() - statSync(path.join(dataDir, "agent-cron.lock")).mtimeMs < LOCK_STALE_MS;
  } catch {
    return false;
  }
}

/**
 * Connects and asks for an MCP session: the link when the owner greets us as a relay; "refused"
 * when it greets us otherwise (an owner older than relays, one that serves no MCP session); null
 * when nobody answers (yet).
 */
function greet(socketPath: string, token: string): Promise<Pick<OwnerLink, "socket" | "rest"> | "refused" | null> {
  return new Promise((resolve) => {
    const socket = net.createConnection(socketPath);
    let buf = "";
    const fail = (why: "refused" | null = null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const unanswered = () => fail();
    const timer = setTimeout(unanswered, GREET_MS);
    socket.setEncoding("utf8");
    socket.on("error", unanswered);
    socket.on("close", unanswered);
    const onData = (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl === -1) return;
      let first: { hello?: boolean; mcp?: boolean } = {};
      try {
        first = JSON.parse(buf.slice(0, nl));
      } catch {
        /* not a greeting */
      }
      // An owner older than relays greets as it greets an API caller: it cannot serve the session.
      if (!first.hello) return fail();
      if (!first.mcp) return fail("refused");
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", unanswered);
      socket.off("close", unanswered);
      socket.pause();
      resolve({ socket, rest: buf.slice(nl + 1) });
    };
    socket.on("data", onData);
    socket.write(`${JSON.stringify({ auth: token, mcp: VERSION })}\n`);
  });
}

type Id = string | number;
interface Message {
  jsonrpc?: unknown;
  id?: Id | null;
  method?: unknown;
  params?: { name?: unknown; uri?: unknown };
  result?: unknown;
  error?: unknown;
  stopping?: boolean;
  drained?: boolean;
}

const isId = (id: unknown): id is Id => typeof id === "string" || typeof id === "number";

class Relay {
  readonly done: Promise<void>;
  private finish!: () => void;
  private readonly framer: LineFramer;
  /** Requests sent on and not answered yet, with whether asking again is safe. */
  private readonly pending = new Map<Id, { line: Buffer; read: boolean }>();
  /** The answers that are ours, not the client's: to the `initialize` answered early. */
  private readonly drop = new Set<Id>();
  /** What set the session up, to set up the full server the same way if it takes over. */
  private initLine: Buffer | null = null;
  private initializedLine: Buffer | null = null;
  private levelLine: Buffer | null = null;
  private readonly subscriptions = new Map<string, Buffer>();
  /** The owner is stopping: what the client sends now waits for the next server. */
  private stopping = false;
  private drained = false;
  private readonly held: Buffer[] = [];
  private ended = false;
  private ownerBuf = "";
  private over = false;

  constructor(
    private readonly link: OwnerLink,
    early: EarlyStdin,
  ) {
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
    this.framer = new LineFramer(MAX_STDIO_MESSAGE_BYTES, (head, bytes, tail) => {
      const { message, answer } = tooLargeAnswer(head, bytes, tail);
      logger.log("warning", "stdio.too_large", message);
      if (answer) this.toClient(JSON.stringify(answer));
    });
    if (early.answeredInitialize !== null) this.drop.add(early.answeredInitialize);
    const { socket } = link;
    socket.on("data", this.fromOwner);
    socket.once("close", () => this.handOver());
    socket.on("error", () => {});
    if (link.rest) this.fromOwner(link.rest);
    socket.resume();
    this.feed(early.replay);
    this.listen(true);
    process.stdin.resume();
    logger.log("info", "stdio.relay", `The data dir's owner (pid ${link.pid}) serves this client; this process carries its messages.`);
    logger.ready(`agent-cron ready stdio data=${link.dataDir}`, { data_dir: link.dataDir });
  }

  private readonly fromStdin = (chunk: Buffer) => this.feed(chunk);

  /** The client's stdin and stdout, and the signals that end this process; off when the full server takes over. */
  private listen(on: boolean): void {
    const [add, remove] = on ? (["on", "once"] as const) : (["off", "off"] as const);
    process.stdin[add]("data", this.fromStdin);
    for (const event of ["end", "close", "error"]) process.stdin[remove](event, this.leave);
    process.stdout[remove]("error", this.leave);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process[remove](sig, this.leave);
  }

  private feed(chunk: Buffer): void {
    this.framer.feed(chunk, (line) => this.fromClient(line));
  }

  /** The client quit: so does this process, at once (SPEC §1); its session in the owner ends with the socket. */
  private readonly leave = () => {
    this.ended = true;
    if (this.over) return;
    this.link.socket.destroy();
    process.exit(0);
  };

  private fromClient(line: Buffer): void {
    if (this.over) return;
    if (this.stopping) {
      this.held.push(line);
      return;
    }
    let msg: Message;
    try {
      msg = JSON.parse(line.toString("utf8"));
    } catch {
      // As the SDK's own transport does: not a message, so nothing to answer.
      logger.log("warning", "stdio.not_json", "A line on stdin that is not JSON was dropped.");
      return;
    }
    if (!msg || typeof msg !== "object") return;
    const method = typeof msg.method === "string" ? msg.method : null;
    if (method && isId(msg.id)) {
      if (method === "initialize") this.initLine = line;
      // The early `initialize` was answered; its answer from the owner is ours to drop.
      if (!this.drop.has(msg.id)) this.pending.set(msg.id, { line, read: readOnly(method, msg) });
      if (method === "logging/setLevel") this.levelLine = line;
      if (method === "resources/subscribe" && typeof msg.params?.uri === "string") this.subscriptions.set(msg.params.uri, line);
      if (method === "resources/unsubscribe" && typeof msg.params?.uri === "string") this.subscriptions.delete(msg.params.uri);
    } else if (method === "notifications/initialized") this.initializedLine = line;
    this.link.socket.write(line);
  }

  private readonly fromOwner = (chunk: string | Buffer) => {
    this.ownerBuf += chunk;
    let nl: number;
    while ((nl = this.ownerBuf.indexOf("\n")) >= 0) {
      const text = this.ownerBuf.slice(0, nl);
      this.ownerBuf = this.ownerBuf.slice(nl + 1);
      if (text) this.ownerLine(text);
    }
  };

  private ownerLine(text: string): void {
    let msg: Message;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.jsonrpc === undefined) {
      // The owner's own word (rpc.ts serveApi): it stops, and whether it answered all it took.
      if (msg.stopping) this.stopping = true;
      if (msg.drained) this.drained = true;
      return;
    }
    if (msg.method === undefined && isId(msg.id)) {
      if (this.drop.delete(msg.id)) return;
      this.pending.delete(msg.id);
    }
    this.toClient(text);
  }

  private toClient(text: string): void {
    if (!this.over) void writeProtocolLine(text);
  }

  /**
   * The owner is gone: the full server takes the client over. It is set up as the session was,
   * and asked again what the old owner certainly did not apply (see the module comment).
   */
  private handOver(): void {
    if (this.over) return;
    if (this.ended) return this.leave();
    const applied = !(this.stopping && this.drained);
    const again: Buffer[] = [];
    for (const [id, p] of this.pending) {
      if (!applied || p.read) again.push(p.line);
      else
        this.toClient(
          JSON.stringify({
            jsonrpc: "2.0",
            id,
            error: {
              code: -32603,
              message: OWNER_STOPPED_MID_CALL,
            },
          }),
        );
    }
    this.over = true;
    this.listen(false);
    process.stdin.pause();
    const dropAnswers: Id[] = [];
    const setUp = (line: Buffer | null): Buffer[] => {
      if (!line) return [];
      const msg = JSON.parse(line.toString("utf8")) as Message;
      msg.id = `${REPLAY_ID}${dropAnswers.length + 1}`;
      dropAnswers.push(msg.id);
      return [Buffer.from(`${JSON.stringify(msg)}\n`)];
    };
    const replay = [
      ...setUp(this.initLine),
      ...(this.initializedLine ? [this.initializedLine] : []),
      ...[...this.subscriptions.values()].flatMap(setUp),
      ...setUp(this.levelLine),
      ...again,
      ...this.held,
      this.framer.rest(),
    ];
    logger.log("info", "stdio.relay_ended", "The data dir's owner went away; this process serves its client itself now.");
    handOverStdin({ replay: Buffer.concat(replay), answeredInitialize: null, ended: false, dropAnswers });
    relayed = true;
    this.finish();
  }
}

/** Whether a request changes nothing, so that asking the next server again is safe. */
function readOnly(method: string, msg: Message): boolean {
  if (method === "tools/call") return readOnlyTools().has(String(msg.params?.name));
  return READ_METHODS.has(method);
}
