import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { executorConfigSchema, type OpenAIExecutorConfig } from "../../src/config.js";
import { OpenAIExecutor, parseRetryAfter } from "../../src/executors/openai.js";
import { makeRequest } from "./helpers.js";

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
  at: number;
}
type Handler = (seen: Seen, res: http.ServerResponse, n: number) => void;

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** An OpenAI-compatible server on a free loopback port whose replies the test scripts. */
async function serve(handler: Handler) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let text = "";
    req.on("data", (c) => (text += c));
    req.on("end", () => {
      const s = { url: req.url ?? "", headers: req.headers, body: text ? JSON.parse(text) : {}, at: Date.now() };
      seen.push(s);
      handler(s, res, seen.length);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, seen };
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
};
const completion = (content: string) => ({
  id: "chatcmpl-1",
  object: "chat.completion",
  choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
  usage: { prompt_tokens: 21, completion_tokens: 9, total_tokens: 30 },
});

function executor(baseUrl: string, over: Record<string, unknown> = {}, serverEnv: NodeJS.ProcessEnv = {}) {
  const cfg = executorConfigSchema().parse({ type: "openai", base_url: baseUrl, model: "llama3.2", ...over }) as OpenAIExecutorConfig;
  return new OpenAIExecutor("local", cfg, { serverEnv, retryBaseMs: 50 });
}
const request = (over: Parameters<typeof makeRequest>[1] = {}) => makeRequest(os.tmpdir(), over);

describe("OpenAIExecutor against a node:http server", () => {
  it("posts the chat completion with system prompt, max_tokens and key, and reads answer and usage", async () => {
    const { baseUrl, seen } = await serve((_, res) => json(res, 200, completion("Paris.")));
    const ex = executor(
      baseUrl + "/",
      { api_key_env: "LOCAL_LLM_KEY", system_prompt: "You are terse.", max_tokens: 64 },
      { LOCAL_LLM_KEY: "k-123", SECRET: "x" },
    );
    const r = await ex.execute(request({ prompt: "Capital of France?" }));
    expect(r).toMatchObject({ status: "completed", error: null, output: "Paris.", usage: { input_tokens: 21, output_tokens: 9, cost_usd: null } });
    expect(seen).toHaveLength(1);
    expect(seen[0].url).toBe("/v1/chat/completions");
    expect(seen[0].headers.authorization).toBe("Bearer k-123");
    expect(seen[0].body).toEqual({
      model: "llama3.2",
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Capital of France?" },
      ],
      stream: false,
      max_tokens: 64,
    });
    expect(ex.program).toBeNull();
  });

  it("asks for a json_schema response_format for structured jobs and json_object for json", async () => {
    const { baseUrl, seen } = await serve((_, res) => json(res, 200, completion('{"answer":42}')));
    const schema = { type: "object", properties: { answer: { type: "number" } } };
    expect((await executor(baseUrl).execute(request({ outputFormat: "structured", outputSchema: schema }))).output).toBe('{"answer":42}');
    await executor(baseUrl).execute(request({ outputFormat: "json" }));
    await executor(baseUrl, { response_format: "none" }).execute(request({ outputFormat: "structured", outputSchema: schema }));
    expect(seen[0].body.response_format).toEqual({ type: "json_schema", json_schema: { name: "output", schema, strict: false } });
    expect(seen[1].body.response_format).toEqual({ type: "json_object" });
    expect(JSON.stringify(seen[1].body.messages)).toContain("JSON");
    expect(seen[2].body.response_format).toBeUndefined();
    expect(JSON.stringify(seen[2].body.messages)).toContain(JSON.stringify(JSON.stringify(schema)).slice(1, -1));
  });

  it("retries a 500 and then succeeds", async () => {
    const { baseUrl, seen } = await serve((_, res, n) => (n === 1 ? json(res, 500, { error: { message: "overloaded" } }) : json(res, 200, completion("ok"))));
    const r = await executor(baseUrl).execute(request());
    expect(r).toMatchObject({ status: "completed", output: "ok" });
    expect(seen).toHaveLength(2);
  });

  it("honours Retry-After on a 429", async () => {
    const { baseUrl, seen } = await serve((_, res, n) =>
      n === 1 ? json(res, 429, { error: { message: "slow down" } }, { "retry-after": "1" }) : json(res, 200, completion("ok")),
    );
    const r = await executor(baseUrl).execute(request());
    expect(r.status).toBe("completed");
    expect(seen[1].at - seen[0].at).toBeGreaterThanOrEqual(950);
  });

  it("never retries another 4xx, and says what the server said", async () => {
    const { baseUrl, seen } = await serve((_, res) => json(res, 400, { error: { message: "model 'llama3.2' not found" } }));
    const r = await executor(baseUrl).execute(request());
    expect(r).toMatchObject({ status: "failed", exitCode: null });
    expect(r.error).toBe(`${baseUrl}/chat/completions answered HTTP 400: model 'llama3.2' not found`);
    expect(seen).toHaveLength(1);
  });

  it("gives up after max_retries on a server that keeps failing", async () => {
    const { baseUrl, seen } = await serve((_, res) => json(res, 503, { error: "down" }));
    const r = await executor(baseUrl, { max_retries: 2 }).execute(request());
    expect(r.status).toBe("failed");
    expect(r.error).toContain("HTTP 503: down (after 3 tries)");
    expect(seen).toHaveLength(3);
  });

  it("does not wait for a Retry-After that would pass the timeout", async () => {
    const { baseUrl, seen } = await serve((_, res) => json(res, 429, { error: { message: "quota" } }, { "retry-after": "20" }));
    const started = Date.now();
    const r = await executor(baseUrl).execute(request({ timeoutMs: 5000 }));
    expect(r.status).toBe("failed");
    expect(r.error).toContain("no retry");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(seen).toHaveLength(1);
  });

  it("retries network errors, then reports the endpoint it cannot reach", async () => {
    const { baseUrl } = await serve(() => {});
    servers[0].closeAllConnections();
    await new Promise((r) => servers.pop()!.close(r));
    const r = await executor(baseUrl, { max_retries: 1 }).execute(request());
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(/^Cannot reach http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions: .*ECONNREFUSED.*\(after 2 tries\)$/);
  });

  it("times out on a server that never answers", async () => {
    const { baseUrl } = await serve(() => {});
    const started = Date.now();
    const r = await executor(baseUrl).execute(request({ timeoutMs: 400 }));
    expect(r).toMatchObject({ status: "timed_out", error: "Timed out after 0.4s; the request was aborted." });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("is canceled through the request's signal", async () => {
    const { baseUrl } = await serve(() => {});
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    expect((await executor(baseUrl).execute(request({ signal: ac.signal }))).status).toBe("canceled");
  });

  it("fails at once when the configured key variable is not set", async () => {
    const { baseUrl, seen } = await serve((_, res) => json(res, 200, completion("ok")));
    const r = await executor(baseUrl, { api_key_env: "LOCAL_LLM_KEY" }).execute(request());
    expect(r.status).toBe("failed");
    expect(r.error).toContain("LOCAL_LLM_KEY (executors.local.api_key_env) is not set");
    expect(seen).toHaveLength(0);
  });

  it("flags an answer cut by max_tokens and refuses a body over max_output_bytes", async () => {
    const { baseUrl } = await serve((_, res) => {
      const body = completion("x".repeat(5000));
      body.choices[0].finish_reason = "length";
      json(res, 200, body);
    });
    expect(await executor(baseUrl).execute(request())).toMatchObject({ status: "completed", outputTruncated: true });
    const big = await executor(baseUrl).execute(request({ maxOutputBytes: 1024 }));
    expect(big.status).toBe("failed");
    expect(big.error).toContain("larger than max_output_bytes (1024)");
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter("soon")).toBeNull();
    expect(parseRetryAfter(undefined)).toBeNull();
  });
});
