import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatReceivers } from "../helpers/chat-receivers.js";
import { DashboardProcess, cookieOf, csrfOf, request, unsafeMarkup } from "../helpers/dashboard.js";
import { HttpServer, type HttpClient } from "../helpers/http.js";
import { TestServer, makeDataDir, removeDir, waitFor } from "../helpers/server.js";

/**
 * The dashboard on the built HTTP daemon (SPEC §12), over real HTTP on loopback: pages,
 * escaping of hostile prompts and outputs, actions behind Origin and CSRF checks, the token
 * login and its cookie, server-sent events, and `agent-cron dashboard` through the owner.
 */

const HOSTILE = [
  "# Report <script>alert('x')</script>",
  "[click](javascript:alert(1)) and [data](data:text/html,<b>x</b>) and [ok](https://example.com/ok)",
  "![tracker](https://evil.example/pixel.png) ![local](/favicon.svg)",
  '<img src=x onerror=alert(1)> <a href="javascript:alert(2)">raw</a> <style>body{}</style>',
  '```"><script>alert(3)</script>\ncode\n```',
  "| left | right |\n|:---|---:|\n| a | <b>1</b> |",
].join("\n\n");

describe("dashboard on the HTTP daemon, without a token", () => {
  let server: HttpServer;
  let client: HttpClient;
  let base: string;
  let rx: ChatReceivers;

  beforeAll(async () => {
    rx = await ChatReceivers.start();
    server = await HttpServer.start({ config: { channels: { phone: { type: "ntfy", url: rx.url("/ntfy/topic") } } } });
    client = await server.connect();
    base = server.url.replace(/\/mcp$/, "");
  });
  afterAll(async () => {
    await server?.cleanup();
    await rx?.close();
  });

  it("shows the audit's sentence on the jobs page and an audit panel with counts per job (SPEC §18)", async () => {
    await client.tool("add_cron", { name: "audited", schedule: "0 9 * * 1-5", prompt: "p", executor: "echo" });
    const home = await request(base, "/");
    expect(home.text).toMatch(/id="audit-panel"[^>]*>Every occurrence since .* is accounted for/);
    const panel = await request(base, "/audit?since=24h");
    expect(panel.status, panel.text.slice(0, 2000)).toBe(200);
    expect(panel.headers["content-security-policy"]).toMatch(/^default-src 'self'(;|$)/);
    expect(panel.text).toMatch(/<h1>Audit<\/h1>/);
    expect(panel.text).toContain(">audited</a>");
    expect(unsafeMarkup(panel.text)).toEqual([]);
    expect((await request(base, "/audit?since=yesterday-ish")).status).toBe(400);
  });

  it("serves the jobs, job and run pages with CSP, and never lets a hostile prompt or output become markup", async () => {
    const { job } = await client.tool("add_cron", { name: "hostile", schedule: "0 9 * * 1-5", prompt: HOSTILE, executor: "echo-stdin" });
    const { run } = await client.tool("run_now", { job: job.id, wait: true });
    expect(run.status).toBe("completed");

    for (const path of ["/", `/jobs/${job.id}`, `/runs/${run.id}`]) {
      const page = await request(base, path);
      expect(page.status, path).toBe(200);
      expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(page.headers["content-security-policy"]).toMatch(/^default-src 'self'(;|$)/);
      expect(page.headers["x-content-type-options"]).toBe("nosniff");
      expect(unsafeMarkup(page.text), path).toEqual([]);
      // Nothing on the page points outside the daemon but links a person may follow.
      for (const m of page.text.matchAll(/\s(src|href)="([^"]*)"/g)) {
        if (m[1] === "src") expect(m[2], path).toMatch(/^\/assets\//);
        else expect(m[2], path).toMatch(/^(\/|#|https:\/\/example\.com\/ok$|https:\/\/evil\.example\/pixel\.png$)/);
      }
    }
    const runPage = (await request(base, `/runs/${run.id}`)).text;
    // Rendered from Markdown: a heading and a link, with the HTML shown as text.
    expect(runPage).toContain("<h1>Report &lt;script&gt;alert('x')&lt;/script&gt;</h1>");
    expect(runPage).toContain('<a href="https://example.com/ok" rel="noopener noreferrer nofollow">ok</a>');
    expect(runPage).toContain("&lt;img src=x onerror=alert(1)&gt;");
    expect(runPage).toContain("image: tracker");
    // Table alignment as a class: the CSP refuses style attributes.
    expect(runPage).toContain('<td class="align-right">&lt;b&gt;1&lt;/b&gt;</td>');
    // The plain output is text, sandboxed.
    const plain = await request(base, `/runs/${run.id}/output`);
    expect(plain.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(plain.headers["content-security-policy"]).toContain("sandbox");
    expect(plain.text).toBe(HOSTILE + "\n");
    // The job page shows the prompt as text.
    expect((await request(base, `/jobs/${job.id}`)).text).toContain("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
  });

  it("names the executor that will run on the job page, the config's default included; every time is one <time>: relative words, the exact time in its title", async () => {
    const { job: plain } = await client.tool("add_cron", { name: "uses-default", schedule: "0 9 * * *", timezone: "Europe/Paris", prompt: "hello" });
    const { job: named } = await client.tool("add_cron", { name: "names-one", schedule: "0 9 * * *", prompt: "hello", executor: "echo-stdin" });
    const page = (await request(base, `/jobs/${plain.id}`)).text;
    expect(page).toContain("<dt>Executor</dt><dd>echo (default)</dd>");
    expect((await request(base, `/jobs/${named.id}`)).text).toContain("<dt>Executor</dt><dd>echo-stdin</dd>");
    const times = [...page.matchAll(/<time datetime="([^"]+)" data-tz="([^"]+)" title="([^"]+)">([^<]+)<\/time>/g)];
    expect(times.length).toBeGreaterThanOrEqual(7); // five next runs, created, updated
    for (const [, iso, zone, title, text] of times) {
      expect(zone).toBe("Europe/Paris");
      expect(text).toMatch(/^(in \d+[smhd]|\d+[smhd] ago|just now)$/);
      expect(title).toMatch(/^\d+ \w{3}, \d\d:\d\d:\d\d Europe\/Paris$/);
      expect(Number.isNaN(Date.parse(iso))).toBe(false);
    }
    // Every <time> on the page is one of these: no second format beside it.
    expect(page.match(/<time /g)!.length).toBe(times.length);
  });

  it("pauses, resumes and runs a job only with the page's CSRF field and its own Origin", async () => {
    const { job } = await client.tool("add_cron", { name: "actions", schedule: "0 9 * * *", prompt: "hi", executor: "echo" });
    const page = await request(base, "/");
    const csrf = csrfOf(page.text);
    const origin = base;
    const pause = `/jobs/${job.id}/pause`;

    expect((await request(base, pause, { form: { csrf: "forged" }, headers: { origin } })).status).toBe(403);
    expect((await request(base, pause, { form: { csrf }, headers: { origin: "http://evil.example" } })).status).toBe(403);
    expect((await request(base, pause, { form: { csrf } })).status).toBe(403);
    expect((await request(base, pause, { form: { csrf }, headers: { origin, "sec-fetch-site": "cross-site" } })).status).toBe(403);
    expect((await client.tool("get_cron", { job: job.id })).job.state).toBe("active");

    const done = await request(base, pause, { form: { csrf, back: "/#job-x" }, headers: { origin } });
    expect(done.status).toBe(303);
    expect(done.headers.location).toBe("/#job-x");
    expect((await client.tool("get_cron", { job: job.id })).job.state).toBe("paused");
    // A back link elsewhere is not followed.
    const away = await request(base, `/jobs/${job.id}/resume`, { form: { csrf, back: "//evil.example/" }, headers: { origin } });
    expect(away.headers.location).toBe("/");
    expect((await client.tool("get_cron", { job: job.id })).job.state).toBe("active");

    // The page's script asks for JSON; without it, run now goes to the new run's page.
    const started = await request(base, `/jobs/${job.id}/run`, { form: { csrf }, headers: { origin, accept: "application/json" } });
    expect(started.status).toBe(200);
    const answer = JSON.parse(started.text);
    expect(answer).toMatchObject({ ok: true, location: expect.stringMatching(/^\/runs\/[0-9a-f-]{36}$/) });
    const runId = answer.location.slice("/runs/".length);
    await waitFor(async () => (await client.tool("get_run", { run: runId })).run.status === "completed", { what: "the dashboard's run" });
    // A GET never acts.
    expect((await request(base, pause)).status).toBe(404);
    // Approving needs the approver secret, which this dashboard has not (SPEC §20).
    const approve = await request(base, `/jobs/${job.id}/approve`, { form: { csrf }, headers: { origin, accept: "application/json" } });
    expect(approve.status).toBe(403);
    expect(JSON.parse(approve.text).message).toMatch(/no approver secret is configured/);
  });

  it("cancels a running run from its page", async () => {
    const { job } = await client.tool("add_cron", { name: "long", schedule: "0 3 * * *", prompt: "30000", executor: "sleep" });
    const { run } = await client.tool("run_now", { job: job.id });
    const page = await request(base, `/runs/${run.id}`);
    expect(page.text).toContain(`action="/runs/${run.id}/cancel"`);
    const res = await request(base, `/runs/${run.id}/cancel`, { form: { csrf: csrfOf(page.text) }, headers: { origin: base } });
    expect(res.status).toBe(303);
    expect((await client.tool("get_run", { run: run.id })).run.status).toBe("canceled");
  });

  it("answers 403 to a foreign Host, as /mcp does, and 404 to an unknown job", async () => {
    const port = new URL(base).port;
    expect((await request(base, "/", { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    expect((await request(base, "/", { headers: { origin: "http://evil.example" } })).status).toBe(403);
    const missing = await request(base, "/jobs/no-such-job");
    expect(missing.status).toBe(404);
    expect(missing.text).toContain("No job");
    expect((await request(base, "/?state=bogus")).status).toBe(400);
    // /mcp and other paths are still the daemon's.
    expect((await request(base, "/other")).status).toBe(404);
  });

  it("sends a change event on /events when a run starts and ends", async () => {
    const { job } = await client.tool("add_cron", { name: "watched", schedule: "0 4 * * *", prompt: "ping", executor: "echo" });
    const abort = new AbortController();
    const res = await fetch(`${base}/events`, { signal: abort.signal });
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    let text = "";
    const reading = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
      } catch {
        // aborted
      }
    })();
    const { run } = await client.tool("run_now", { job: job.id });
    const events = await waitFor(
      () => {
        const all = [...text.matchAll(/event: change\ndata: (.*)\n\n/g)].map((m) => JSON.parse(m[1]));
        const mine = all.filter((e) => e.kind === "run" && e.run_id === run.id);
        return mine.some((e) => e.change === "finished") && mine;
      },
      { what: "the run's events", describe: () => text },
    );
    expect(events.map((e: { change: string }) => e.change)).toEqual(["started", "finished"]);
    expect(events[1]).toMatchObject({ job_id: job.id, status: "completed" });
    // Events carry ids and states, never names or outputs.
    expect(text).not.toContain("watched");
    abort.abort();
    await reading;
  });

  it("points channel messages at the dashboard's run page", async () => {
    const { job } = await client.tool("add_cron", { name: "delivered", schedule: "0 5 * * *", prompt: "news", executor: "echo", deliver_to: ["phone"] });
    const { run } = await client.tool("run_now", { job: job.id, wait: true });
    const seen = await waitFor(() => rx.seen.find((s) => s.json?.topic === "topic" && s.body.includes("news")), {
      what: "the ntfy message",
      describe: () => JSON.stringify(rx.seen) + server.stderr(),
    });
    expect(seen.json.click).toBe(`${base}/runs/${run.id}`);
  });
});

describe("dashboard with a token", () => {
  const TOKEN = "dashboard-secret-token-1234567890";
  let server: HttpServer;
  let client: HttpClient;
  let base: string;

  beforeAll(async () => {
    server = await HttpServer.start({ env: { AGENT_CRON_TOKEN: TOKEN } });
    client = await server.connect({ token: TOKEN });
    base = server.url.replace(/\/mcp$/, "");
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it("refuses every page and action without a login, and logs in once with an HttpOnly, SameSite=Strict cookie that is not the token", async () => {
    const { job } = await client.tool("add_cron", { name: "private", schedule: "0 9 * * *", prompt: "secret prompt", executor: "echo" });
    const pages = ["/", `/jobs/${job.id}`, "/events"];
    for (const path of pages) {
      const res = await request(base, path);
      expect(res.status, path).toBe(401);
      expect(res.text).not.toContain("secret prompt");
    }
    expect((await request(base, `/jobs/${job.id}/pause`, { form: { csrf: "x" }, headers: { origin: base } })).status).toBe(401);
    const login = await request(base, "/?state=active");
    expect(login.text).toContain('<form class="login" method="post" action="/login">');

    const wrong = await request(base, "/login", { form: { token: "nope", next: "/" }, headers: { origin: base } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers["set-cookie"]).toBeUndefined();
    // No Origin: not from the login page.
    expect((await request(base, "/login", { form: { token: TOKEN, next: "/" } })).status).toBe(403);

    const ok = await request(base, "/login", { form: { token: TOKEN, next: `/jobs/${job.id}` }, headers: { origin: base } });
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe(`/jobs/${job.id}`);
    const setCookie = ok.headers["set-cookie"]![0];
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(setCookie).toMatch(/; Path=\//);
    expect(setCookie).not.toContain(TOKEN);
    const cookie = cookieOf(ok);

    const page = await request(base, `/jobs/${job.id}`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.text).toContain("secret prompt");
    expect(page.text).not.toContain(TOKEN);
    const csrf = csrfOf(page.text);
    // The CSRF field is bound to the login; it is not the cookie either.
    expect(csrf).not.toBe(cookie.split("=")[1]);
    expect((await request(base, `/jobs/${job.id}/pause`, { form: { csrf }, headers: { origin: base } })).status).toBe(401);
    expect((await request(base, `/jobs/${job.id}/pause`, { form: { csrf }, headers: { origin: base, cookie } })).status).toBe(303);
    expect((await client.tool("get_cron", { job: job.id })).job.state).toBe("paused");
    // A cookie made up by hand is refused.
    expect((await request(base, "/", { headers: { cookie: `${cookie.split("=")[0]}=${Buffer.from(TOKEN).toString("base64url")}` } })).status).toBe(401);
    // Scripts may send the bearer token instead.
    expect((await request(base, "/", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);

    // Log out: the cookie is cleared.
    const out = await request(base, "/logout", { form: { csrf }, headers: { origin: base, cookie } });
    expect(out.status).toBe(303);
    expect(out.headers["set-cookie"]![0]).toMatch(/Max-Age=0/);
  });

  it("takes ?token= once, sets the cookie and drops the token from the address; the token never reaches the log", async () => {
    const res = await request(base, `/?state=active&token=${TOKEN}`);
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe("/?state=active");
    expect(res.headers["set-cookie"]![0]).toMatch(/HttpOnly; SameSite=Strict/);
    expect((await request(base, "/", { headers: { cookie: cookieOf(res) } })).status).toBe(200);
    const bad = await request(base, "/?token=wrong");
    expect(bad.status).toBe(401);
    expect(bad.text).not.toContain("wrong");
    // A link from a chat message (another site) arrives without the Strict cookie: the page
    // reloads itself from the dashboard, which then gets it.
    const bounced = await request(base, "/runs/abc", { headers: { "sec-fetch-site": "cross-site" } });
    expect(bounced.status).toBe(200);
    expect(bounced.text).toContain('<meta http-equiv="refresh" content="0;url=/runs/abc">');
    expect(server.stderr()).not.toContain(TOKEN);
  });
});

describe("agent-cron dashboard", () => {
  let owner: TestServer;
  let dash: DashboardProcess;
  const dataDir = makeDataDir();

  beforeAll(async () => {
    owner = await TestServer.start({ dataDir });
    dash = await DashboardProcess.start(dataDir);
  });
  afterAll(async () => {
    await dash?.stop();
    await owner?.close();
    await removeDir(dataDir);
  });

  it("serves the stdio server's jobs on loopback and acts through it, live", async () => {
    expect(dash.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    // The stdio server owns the data dir; the dashboard forwards to it.
    expect(dash.stderr()).not.toContain("this process schedules");
    const job = await owner.addJob({ name: "from-stdio", schedule: "0 9 * * *", prompt: "hello", executor: "echo" });
    const page = await request(dash.url, "/");
    expect(page.text).toContain("from-stdio");

    const abort = new AbortController();
    const events = await fetch(new URL("/events", dash.url), { signal: abort.signal });
    let text = "";
    void (async () => {
      try {
        for await (const chunk of events.body as unknown as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString();
      } catch {
        // aborted
      }
    })();
    const res = await request(dash.url, `/jobs/${job.id}/run`, { form: { csrf: csrfOf(page.text) }, headers: { origin: dash.url.replace(/\/$/, "") } });
    expect(res.status).toBe(303);
    const runId = res.headers.location!.slice("/runs/".length);
    await waitFor(async () => (await owner.runRows("from-stdio")).some((r) => r.id === runId && r.status === "completed"), { what: "the run in the owner" });
    // The owner's events reach the dashboard's stream.
    await waitFor(() => text.includes(`"run_id":"${runId}"`) && text.includes('"change":"finished"'), { what: "the forwarded event", describe: () => text });
    abort.abort();
    expect((await request(dash.url, "/", { headers: { host: "evil.example" } })).status).toBe(403);
    expect(await dash.stop()).toBe(0);
    // The stdio server still answers: the dashboard never took the data dir.
    expect((await owner.tool("list_crons")).jobs.map((j: { name: string }) => j.name)).toEqual(["from-stdio"]);
  });
});
