import type { OpenAIExecutorConfig } from "../config.js";
import type { Usage } from "../core/jobs.js";
import { num, seconds } from "./cli-agent.js";
import type { ExecutionRequest, ExecutionResult, Executor } from "../core/ports.js";

export interface OpenAIExecutorOptions {
  serverEnv: NodeJS.ProcessEnv;
  /** First backoff between tries; doubles each time. */
  retryBaseMs?: number;
}

const BACKOFF_CAP_MS = 8_000;
/** A server may ask for minutes; a scheduled run would rather fail and be retried by the dispatcher. */
const RETRY_AFTER_CAP_MS = 30_000;
const ERROR_BODY_CHARS = 300;

type Reply = { kind: "http"; status: number; retryAfterMs: number | null; body: string; truncated: boolean } | { kind: "network"; error: string };

/** Seconds or an HTTP date, as RFC 9110 allows; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The message in an OpenAI-style error body, or the start of whatever the server sent. */
function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    const msg = typeof parsed.error === "string" ? parsed.error : (parsed.error?.message ?? parsed.message);
    if (typeof msg === "string" && msg) return msg;
  } catch {
    // Not JSON: a proxy's HTML page, say.
  }
  const text = body.trim().replace(/\s+/g, " ");
  return text.length > ERROR_BODY_CHARS ? `${text.slice(0, ERROR_BODY_CHARS)}…` : text || "(empty body)";
}

/** Text of a chat message whose content is a string or, on some servers, a list of parts. */
function contentText(content: unknown): string | null {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return null;
  const parts = content.map((p) => (typeof p === "string" ? p : typeof p?.text === "string" ? p.text : "")).filter(Boolean);
  return parts.length ? parts.join("") : null;
}

/** Any OpenAI-compatible `/chat/completions` endpoint: Ollama, llama.cpp, vLLM, LiteLLM, OpenAI. */
export class OpenAIExecutor implements Executor {
  readonly type = "openai";
  readonly program = null;
  readonly endpoint: string;

  constructor(
    readonly name: string,
    private readonly cfg: OpenAIExecutorConfig,
    private readonly opts: OpenAIExecutorOptions,
  ) {
    this.endpoint = `${cfg.base_url.replace(/\/+$/, "")}/chat/completions`;
  }

  /** The request body of one run. */
  buildBody(req: ExecutionRequest): Record<string, unknown> {
    const { cfg } = this;
    const system = [cfg.system_prompt ?? ""];
    // OpenAI rejects json_object unless the messages mention JSON; servers without schema
    // support only see the schema if it is in the prompt.
    if (req.outputFormat === "json") system.push("Reply with one JSON value and nothing else.");
    if (req.outputFormat === "structured") {
      system.push(
        cfg.response_format === "json_schema"
          ? "Reply with JSON only."
          : `Reply with JSON only, matching this JSON Schema: ${JSON.stringify(req.outputSchema ?? {})}`,
      );
    }
    const systemText = system.filter(Boolean).join("\n\n");
    const body: Record<string, unknown> = {
      model: cfg.model,
      messages: [...(systemText ? [{ role: "system", content: systemText }] : []), { role: "user", content: req.prompt }],
      stream: false,
    };
    if (cfg.max_tokens !== undefined) body.max_tokens = cfg.max_tokens;
    if (cfg.temperature !== undefined) body.temperature = cfg.temperature;
    if (req.outputFormat !== "text" && cfg.response_format !== "none") {
      // strict: false accepts any JSON Schema; the answer is validated locally either way.
      body.response_format =
        req.outputFormat === "structured" && cfg.response_format === "json_schema"
          ? { type: "json_schema", json_schema: { name: "output", schema: req.outputSchema ?? {}, strict: false } }
          : { type: "json_object" };
    }
    return body;
  }

  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    const fail = (status: ExecutionResult["status"], error: string, raw?: string): ExecutionResult => ({
      status,
      exitCode: null,
      error,
      output: "",
      outputTruncated: false,
      usage: null,
      raw,
    });
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
    if (this.cfg.api_key_env) {
      const key = this.cfg.env[this.cfg.api_key_env] ?? this.opts.serverEnv[this.cfg.api_key_env];
      if (!key) {
        return fail("failed", `The environment variable ${this.cfg.api_key_env} (executors.${this.name}.api_key_env) is not set.`);
      }
      headers.authorization = `Bearer ${key}`;
    }
    const body = JSON.stringify(this.buildBody(req));

    const deadline = Date.now() + req.timeoutMs;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), Math.min(req.timeoutMs, 2 ** 31 - 1));
    const signal = AbortSignal.any([req.signal, timeout.signal]);
    const stopped = (): ExecutionResult | null =>
      req.signal.aborted
        ? fail("canceled", "Canceled; the request was aborted.")
        : timeout.signal.aborted
          ? fail("timed_out", `Timed out after ${seconds(req.timeoutMs)}; the request was aborted.`)
          : null;

    try {
      let tries = 0;
      for (;;) {
        tries++;
        const reply = await this.post(body, headers, signal, req.maxOutputBytes);
        const stop = stopped();
        if (stop) return stop;
        if (reply.kind === "http" && reply.status >= 200 && reply.status < 300) return this.toResult(reply, req);

        const retryable = reply.kind === "network" || reply.status >= 500 || reply.status === 429;
        const what =
          reply.kind === "network"
            ? `Cannot reach ${this.endpoint}: ${reply.error}`
            : `${this.endpoint} answered HTTP ${reply.status}: ${errorMessage(reply.body)}`;
        const triesNote = tries > 1 ? ` (after ${tries} tries)` : "";
        const raw = reply.kind === "http" ? reply.body : undefined;
        if (!retryable || tries > this.cfg.max_retries) return fail("failed", `${what}${triesNote}`, raw);

        const backoff = Math.min((this.opts.retryBaseMs ?? 500) * 2 ** (tries - 1), BACKOFF_CAP_MS);
        const wait = reply.kind === "http" && reply.retryAfterMs !== null ? Math.min(reply.retryAfterMs, RETRY_AFTER_CAP_MS) : backoff;
        if (Date.now() + wait >= deadline) {
          return fail("failed", `${what}${triesNote}; no retry: waiting ${seconds(wait)} would pass the timeout`, raw);
        }
        await abortableSleep(wait, signal);
        const stopWaiting = stopped();
        if (stopWaiting) return stopWaiting;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private async post(body: string, headers: Record<string, string>, signal: AbortSignal, maxBytes: number): Promise<Reply> {
    try {
      // Loaded on first use: most servers never talk to an endpoint.
      const { request } = await import("../kernel/http-client.js");
      const res = await request(this.endpoint, { method: "POST", headers, body, signal });
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (size + chunk.length > maxBytes) {
          truncated = true;
          res.body.destroy();
          break;
        }
        chunks.push(chunk);
        size += chunk.length;
      }
      return {
        kind: "http",
        status: res.statusCode,
        retryAfterMs: parseRetryAfter(res.headers["retry-after"]),
        body: Buffer.concat(chunks).toString("utf8"),
        truncated,
      };
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      const code = e.code ?? e.cause?.code;
      return { kind: "network", error: `${e.cause?.message ?? e.message}${code ? ` (${code})` : ""}` };
    }
  }

  private toResult(reply: Extract<Reply, { kind: "http" }>, req: ExecutionRequest): ExecutionResult {
    const base = { exitCode: null, output: "", outputTruncated: false, usage: null, raw: reply.body };
    if (reply.truncated) {
      return { ...base, status: "failed", error: `The answer from ${this.endpoint} is larger than max_output_bytes (${req.maxOutputBytes}).` };
    }
    let parsed: { choices?: { message?: { content?: unknown; refusal?: unknown }; finish_reason?: unknown }[]; usage?: Record<string, unknown> };
    try {
      parsed = JSON.parse(reply.body);
    } catch {
      return { ...base, status: "failed", error: `${this.endpoint} answered HTTP ${reply.status} with a body that is not JSON.` };
    }
    const u = parsed.usage;
    // Gateways such as OpenRouter report what the call cost; plain servers do not.
    const usage: Usage | null = u ? { input_tokens: num(u.prompt_tokens), output_tokens: num(u.completion_tokens), cost_usd: num(u.cost) } : null;
    const choice = parsed.choices?.[0];
    const text = contentText(choice?.message?.content);
    if (text === null) {
      const refusal = choice?.message?.refusal;
      const why = typeof refusal === "string" && refusal ? `the model refused: ${refusal}` : "the answer has no message content";
      return { ...base, usage, status: "failed", error: `${this.endpoint}: ${why}.` };
    }
    // finish_reason "length": the model hit max_tokens and the answer is cut.
    return { ...base, usage, status: "completed", error: null, output: text, outputTruncated: choice?.finish_reason === "length" };
  }
}
