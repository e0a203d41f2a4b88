import { readFileSync } from "node:fs";
import { VERSION } from "../version.js";
import { writeTogetherAndWait } from "../kernel/together.js";

/**
 * A stdio client's first two questions, `initialize` and `tools/list`, have answers that depend
 * on nothing but the build: scripts/bundle.mjs writes them beside the bundle (tools-list.json).
 * `agent-cron serve` answers them from that file as soon as Node is up, before it has loaded the
 * SDK, its config and its data dir, which was most of a cold start (issue 27; README,
 * Benchmarks). Everything it reads is handed to the real server (serveStdio), `initialize`
 * included: the SDK learns the client's capabilities from it, and its second answer to that id
 * is dropped. The first message it does not answer ends the early answers, so the order of
 * every other answer is the server's.
 */

/** The file the build writes; src/mcp/server.ts reads its `tools` too. */
export const PREPARED_FILE = "tools-list.json";

export interface PreparedAnswers {
  tools: unknown[];
  /** The SDK server's answer to `initialize`, but for the protocol version, negotiated as it does. */
  initialize?: {
    protocol_versions: string[];
    result: { capabilities: unknown; serverInfo: unknown; instructions?: string };
  };
}

let prepared: PreparedAnswers | null | undefined;

/** The answers the build prepared; null when running from src/ (tests), where they are computed. */
export function preparedAnswers(): PreparedAnswers | null {
  if (prepared === undefined) {
    try {
      prepared = JSON.parse(readFileSync(new URL(`./${PREPARED_FILE}`, import.meta.url), "utf8")) as PreparedAnswers;
    } catch {
      prepared = null;
    }
  }
  return prepared;
}

/** What the early reader hands over: every byte to read again, and the id of the `initialize` already answered. */
export interface EarlyStdin {
  replay: Buffer;
  answeredInitialize: string | number | null;
  /** stdin ended (the client quit) before the real server took over. */
  ended: boolean;
  /** Answers not to send: to the requests a relay made to set up the real server (src/mcp/relay.ts). */
  dropAnswers?: (string | number)[];
}

/** A line longer than this is left to the real server, which knows the message size limit. */
const MAX_EARLY_LINE = 256 * 1024;

let reader: { take(): EarlyStdin; initialized(): string | number | null } | null = null;

/** What a relay hands to the real server when it stops relaying (src/mcp/relay.ts). */
let handedOver: EarlyStdin | null = null;

/**
 * How long the bin waits for the early answers before it loads the rest. Node 22 loads a module
 * graph without giving its event loop a turn (Node 20 read the files asynchronously), so a
 * `tools/list` arriving while the CLI's modules load waited for all of them: 269 → 93 ms to the
 * raw answer when the load waits (issue 27; README, Benchmarks).
 */
const EARLY_WAIT_MS = 150;

/**
 * Starts answering when argv is a stdio `serve` (no --http, no --background, no other flag than
 * the data dir and config) and the build's answers are there. Called first thing by the bin,
 * which loads the rest when this settles: once `tools/list` is answered, a message comes that
 * is not answered here, stdin ends, or EARLY_WAIT_MS have passed (at once when not answering).
 */
export function answerEarly(argv: string[]): Promise<void> {
  if (!stdioServeArgs(argv)) return Promise.resolve();
  const answers = preparedAnswers();
  const init = answers?.initialize;
  if (!answers || !init) return Promise.resolve();
  let done!: () => void;
  const answered = new Promise<void>((resolve) => {
    done = resolve;
  });
  const timer = setTimeout(() => done(), EARLY_WAIT_MS);
  const replay: Buffer[] = [];
  let partial: Buffer[] = [];
  let partialBytes = 0;
  let answering = true;
  let initId: string | number | null = null;
  let ended = false;
  // stdout is the protocol here, and these are its first lines: whole JSON-RPC answers, written
  // only while answering (before the SDK's transport exists); after the hand-over only that
  // transport writes to it.
  const send = (id: string | number, result: unknown) => {
    if (answering) void writeProtocolLine(JSON.stringify({ jsonrpc: "2.0", id, result }));
  };

  /** Answers one whole line if it may; false when the early answers end here. */
  const answer = (line: Buffer): boolean => {
    let msg: { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: Record<string, unknown> };
    try {
      msg = JSON.parse(line.toString("utf8"));
    } catch {
      return false;
    }
    if (!msg || typeof msg !== "object" || msg.jsonrpc !== "2.0") return false;
    const id = typeof msg.id === "string" || typeof msg.id === "number" ? msg.id : null;
    if (msg.method === "initialize" && id !== null && initId === null && validInitialize(msg.params)) {
      initId = id;
      const asked = msg.params!.protocolVersion as string;
      const protocolVersion = init.protocol_versions.includes(asked) ? asked : init.protocol_versions[0];
      // The version installed, as the SDK server says it (the build's copy may predate a bump).
      send(id, { protocolVersion, ...init.result, serverInfo: { ...(init.result.serverInfo as object), version: VERSION } });
      replay.push(line);
      return true;
    }
    if (msg.method === "notifications/initialized" && id === null && initId !== null) {
      replay.push(line);
      return true;
    }
    if (msg.method === "tools/list" && id !== null && initId !== null && (msg.params === undefined || typeof msg.params === "object")) {
      send(id, { tools: answers.tools });
      done();
      return true;
    }
    return false;
  };

  const onData = (chunk: Buffer) => {
    if (!answering) return void replay.push(chunk);
    let rest = chunk;
    while (rest.length) {
      const nl = rest.indexOf(10);
      if (nl === -1) {
        partial.push(rest);
        partialBytes += rest.length;
        if (partialBytes > MAX_EARLY_LINE) stop();
        return;
      }
      const line = Buffer.concat([...partial, rest.subarray(0, nl + 1)]);
      partial = [];
      partialBytes = 0;
      rest = rest.subarray(nl + 1);
      if (!answer(line)) {
        replay.push(line);
        if (rest.length) replay.push(rest);
        return stop();
      }
    }
  };
  const stop = () => {
    answering = false;
    replay.push(...partial);
    partial = [];
    done();
  };
  const onEnd = () => {
    ended = true;
    done();
  };
  process.stdin.on("data", onData);
  process.stdin.once("end", onEnd);
  reader = {
    initialized: () => initId,
    take() {
      process.stdin.off("data", onData);
      process.stdin.off("end", onEnd);
      process.stdin.pause();
      stop();
      return { replay: Buffer.concat(replay), answeredInitialize: initId, ended };
    },
  };
  return answered.finally(() => clearTimeout(timer));
}

/**
 * The early reader's bytes and state (or what a relay handed over in their place), once; null
 * when there was none (HTTP, tests from src/).
 */
export function takeEarlyStdin(): EarlyStdin | null {
  if (handedOver) {
    const h = handedOver;
    handedOver = null;
    return h;
  }
  const r = reader;
  reader = null;
  return r ? r.take() : null;
}

/** The id of the `initialize` answered early, while the early reader still reads; null when none was. */
export function earlyInitialize(): string | number | null {
  return reader?.initialized() ?? null;
}

/**
 * The one place that writes to stdout, which over stdio is the protocol: whole JSON-RPC lines,
 * written by the early answers (before the server exists), by a relay (src/mcp/relay.ts), and
 * by the server's transport (src/mcp/stdio.ts, "turn": a fleet's run events leave together).
 * Resolves once stdout has taken the line (kernel/together.ts).
 */
export function writeProtocolLine(json: string, when: "turn" | "tick" = "tick"): Promise<void> {
  return writeTogetherAndWait(process.stdout, `${json}\n`, when);
}

/** A relay that stops relaying leaves the real server what it read and the state it set up. */
export function handOverStdin(state: EarlyStdin): void {
  handedOver = state;
}

/**
 * `serve` over stdio with only the flags that say where the data and config are (cli.ts
 * splitCommand): those flags; null for anything else.
 */
export function stdioServeArgs(argv: string[]): { dataDir?: string; config?: string } | null {
  let command: string | undefined;
  const out: { dataDir?: string; config?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--data-dir" || a === "--config") {
      if (++i >= argv.length) return null;
      out[a === "--data-dir" ? "dataDir" : "config"] = argv[i];
      continue;
    }
    if (a.startsWith("--data-dir=")) out.dataDir = a.slice("--data-dir=".length);
    else if (a.startsWith("--config=")) out.config = a.slice("--config=".length);
    else if (command !== undefined || a.startsWith("-")) return null;
    else command = a;
  }
  return command === "serve" ? out : null;
}

/** What the SDK's InitializeRequestSchema requires; anything less is left for the SDK to refuse. */
function validInitialize(params: Record<string, unknown> | undefined): boolean {
  const info = params?.clientInfo as Record<string, unknown> | undefined;
  return (
    typeof params?.protocolVersion === "string" &&
    !!params.capabilities &&
    typeof params.capabilities === "object" &&
    !!info &&
    typeof info === "object" &&
    typeof info.name === "string" &&
    typeof info.version === "string"
  );
}
