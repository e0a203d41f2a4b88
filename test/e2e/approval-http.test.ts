/**
 * Approval on the dashboard and guessing over HTTP (SPEC §20), through the built HTTP
 * daemon and plain HTTP requests as a browser or a script sends them: the MCP token, the
 * page's CSRF field and a forged Origin never approve; only the approver secret does, and
 * only its sign-in; wrong tokens are answered ever more slowly, per client, while a correct
 * one from another client is never held back.
 */
import { afterEach, describe, expect, it } from "vitest";
import { cookieOf, csrfOf, request, type Answer } from "../helpers/dashboard.js";
import { HttpServer } from "../helpers/http.js";
import { makeDataDir, removeDir, runCli, waitFor } from "../helpers/server.js";

const TOKEN = "mcp-token-0123456789abcdef";
const APPROVER = "approver-secret-fedcba9876543210";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

async function daemon(env: Record<string, string>): Promise<{ h: HttpServer; base: string }> {
  const h = await HttpServer.start({ config: { approval: "required" }, env });
  cleanup.push(() => h.cleanup());
  return { h, base: h.url.replace(/\/mcp$/, "") };
}

async function login(base: string): Promise<string> {
  const ok = await request(base, "/login", { form: { token: TOKEN, next: "/" }, headers: { origin: base } });
  expect(ok.status).toBe(303);
  return cookieOf(ok);
}

/** The CSRF field of the form that posts to `action`. */
function formCsrf(page: string, action: string): string {
  const at = page.indexOf(`action="${action}"`);
  expect(at, `a form posting to ${action}`).toBeGreaterThan(-1);
  return csrfOf(page.slice(at));
}

describe("approving on the dashboard", () => {
  it("without an approver secret: pending jobs say how a person approves, and no token holder can approve, with the page's CSRF field and its Origin", async () => {
    const { h, base } = await daemon({ AGENT_CRON_TOKEN: TOKEN });
    const c = await h.connect({ token: TOKEN });
    const { job } = await c.tool("add_cron", { name: "agent-made", schedule: "@every 1s", prompt: "p" });
    expect(job.state).toBe("pending_approval");
    const cookie = await login(base);
    const page = await request(base, "/", { headers: { cookie } });
    const csrf = csrfOf(page.text);
    for (const verb of ["approve", "reject"]) {
      const forged = await request(base, `/jobs/${job.id}/${verb}`, { form: { csrf }, headers: { cookie, origin: base, accept: "application/json" } });
      expect(forged.status, verb).toBe(403);
      expect(JSON.parse(forged.text).message).toMatch(
        /no approver secret is configured \(config approver_token_env\); a person approves at a terminal with: agent-cron approve/,
      );
      // And a script with the bearer token alone.
      const scripted = await request(base, `/jobs/${job.id}/${verb}`, { form: { csrf }, headers: { authorization: `Bearer ${TOKEN}`, origin: base } });
      expect(scripted.status, verb).toBe(403);
    }
    expect((await c.tool("get_cron", { job: "agent-made" })).job.state).toBe("pending_approval");
    expect(page.text).toContain("<code>agent-cron approve agent-made</code>");
    expect(page.text).not.toContain(`action="/jobs/${job.id}/approve"`);
  }, 120_000);

  it("with an approver secret: the token holder still cannot; the approver signs in with the secret and approves, recorded as the dashboard's; the secret never reaches a run", async () => {
    const { h, base } = await daemon({ AGENT_CRON_TOKEN: TOKEN, AGENT_CRON_APPROVER_TOKEN: APPROVER });
    const c = await h.connect({ token: TOKEN });
    const { job } = await c.tool("add_cron", { name: "env-printer", schedule: "@yearly", prompt: "ENV", executor: "echo" });
    const cookie = await login(base);
    const page = await request(base, `/jobs/${job.id}`, { headers: { cookie } });
    expect(page.text).toContain("sign in as approver");
    const refused = await request(base, `/jobs/${job.id}/approve`, { form: { csrf: csrfOf(page.text) }, headers: { cookie, origin: base } });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("Approving and rejecting need the approver&#39;s sign-in");

    // The MCP token is not the approver secret.
    const approverForm = await request(base, "/approver", { headers: { cookie } });
    const signCsrf = csrfOf(approverForm.text);
    const wrong = await request(base, "/approver", { form: { secret: TOKEN, csrf: signCsrf, next: `/jobs/${job.id}` }, headers: { cookie, origin: base } });
    expect(wrong.status).toBe(401);
    const signed = await request(base, "/approver", { form: { secret: APPROVER, csrf: signCsrf, next: `/jobs/${job.id}` }, headers: { cookie, origin: base } });
    expect(signed.status).toBe(303);
    const approverCookie = cookieOf(signed);
    expect(signed.headers["set-cookie"]![0]).toMatch(/HttpOnly; SameSite=Strict/);
    expect(approverCookie).not.toContain(APPROVER);
    const both = `${cookie}; ${approverCookie}`;

    const approverPage = await request(base, `/jobs/${job.id}`, { headers: { cookie: both } });
    const csrf = formCsrf(approverPage.text, `/jobs/${job.id}/approve`);
    expect(csrf).not.toBe(csrfOf(page.text));
    // Its form's field without the approver's cookie, or from another origin, is still refused.
    expect((await request(base, `/jobs/${job.id}/approve`, { form: { csrf }, headers: { cookie, origin: base } })).status).toBe(403);
    expect((await request(base, `/jobs/${job.id}/approve`, { form: { csrf }, headers: { cookie: both, origin: "http://evil.example" } })).status).toBe(403);
    const done = await request(base, `/jobs/${job.id}/approve`, { form: { csrf, back: `/jobs/${job.id}` }, headers: { cookie: both, origin: base } });
    expect(done.status).toBe(303);
    const approved = (await c.tool("get_cron", { job: job.id })).job;
    expect(approved.state).toBe("active");
    expect(approved.approvals.at(-1)).toMatchObject({
      event: "approved",
      via: "dashboard",
      by: expect.stringMatching(/^the approver signed in on the dashboard served by .*\(uid \d+\), pid \d+/),
    });
    expect((await request(base, `/jobs/${job.id}`, { headers: { cookie } })).text).toMatch(
      /<dt>Approval<\/dt><dd><div>Approved [\s\S]*by the approver signed in on the dashboard[\s\S]*through dashboard/,
    );

    const run = (await c.tool("run_now", { job: job.id, wait: true })).run;
    const out = (await c.tool("get_run", { run: run.id })).run;
    expect(JSON.stringify(out)).not.toContain(APPROVER);
    expect(JSON.stringify(out)).toContain("AGENT_CRON_RUN_ID");
  }, 120_000);

  it("a config whose env_allow would pass the approver secret to runs is refused", async () => {
    const dir = makeDataDir({ config: { env_allow: ["AGENT_CRON_APPROVER_TOKEN"] } });
    cleanup.push(() => removeDir(dir));
    const r = await runCli(["list", "--data-dir", dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("env_allow names AGENT_CRON_APPROVER_TOKEN, the approver secret (approver_token_env), which never goes to a run");
  }, 120_000);
});

describe("guessing tokens", () => {
  it("slows one client's wrong bearer tokens with growing delays, while another client's correct token goes through at once", async () => {
    const { h } = await daemon({ AGENT_CRON_TOKEN: TOKEN });
    const guess = async (n: number) => {
      const t0 = Date.now();
      const r = await fetch(h.url, { method: "POST", headers: { authorization: `Bearer guess-${n}`, "content-type": "application/json" }, body: "{}" });
      expect(r.status).toBe(401);
      return Date.now() - t0;
    };
    const took: number[] = [];
    for (let n = 0; n < 7; n++) took.push(await guess(n));
    // Three free, then 250 ms doubling: the seventh waits 2 s.
    expect(took[6]).toBeGreaterThanOrEqual(1900);
    expect(took[5]).toBeGreaterThanOrEqual(950);
    let guessDone = false;
    const eighth = guess(7).then(() => (guessDone = true));
    const c = await h.connect({ token: TOKEN });
    expect((await c.tool("list_crons")).total).toBe(0);
    expect(guessDone).toBe(false);
    await eighth;
  }, 120_000);

  it("a flood of wrong logins never locks out the person who types the right token", async () => {
    const { base } = await daemon({ AGENT_CRON_TOKEN: TOKEN });
    const answers: Answer[] = [];
    const flood = Array.from({ length: 25 }, (_, i) =>
      request(base, "/login", { form: { token: `guess-${i}`, next: "/" }, headers: { origin: base } }).then(
        (a) => void answers.push(a),
        () => {},
      ),
    );
    // The free guesses come back at once; the rest wait in line.
    await waitFor(() => answers.length >= 3, { what: "the first wrong answers" });
    expect(answers.every((a) => a.status === 401)).toBe(true);
    const ok = await request(base, "/login", { form: { token: TOKEN, next: "/" }, headers: { origin: base } });
    expect(ok.status).toBe(303);
    expect(answers.length).toBeLessThan(25);
    void flood;
  }, 120_000);
});
