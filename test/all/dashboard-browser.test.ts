import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpServer, type HttpClient } from "../helpers/http.js";
import { ROOT } from "../helpers/server.js";

/**
 * The dashboard in a real browser: Debian's Chromium (scripts/install-chromium.sh) driven by
 * playwright-core. Clicks pause and run now, sees the live update arrive over SSE without a
 * reload, works without JavaScript and from the keyboard, fits a phone, logs in with the
 * token. Screenshots of the three pages, desktop and phone, land in .cache/screenshots/.
 */

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = path.join(ROOT, ".cache", "screenshots");
const OUTPUT = [
  "## Errors since yesterday",
  "",
  "| service | new | total |",
  "|---|---:|---:|",
  "| api | 3 | 41 |",
  "| worker | 0 | 7 |",
  "",
  "- `TimeoutError` in **checkout** (3×), first at 08:12",
  "- See [the runbook](https://example.com/runbook) <script>alert(1)</script>",
  "",
  "![chart](https://evil.example/chart.png)",
  "",
  "```",
  "2026-12-01T08:12:03Z checkout TimeoutError: upstream took 30s",
  "```",
].join("\n");

let browser: Browser;
beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  mkdirSync(SHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
});

/** A page that fails the test on any script error or CSP violation (both reach the console). */
async function openPage(context: BrowserContext): Promise<{ page: Page; problems: string[] }> {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  page.on("pageerror", (e) => problems.push(e.message));
  // Leaving a page aborts its event stream; any other failed request is a problem.
  page.on("requestfailed", (r) => r.failure()?.errorText !== "net::ERR_ABORTED" && problems.push(`request failed: ${r.url()}`));
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) problems.push(`request outside the daemon: ${r.url()}`);
  });
  return { page, problems };
}

let base = "";

describe("dashboard in Chromium", () => {
  let server: HttpServer;
  let client: HttpClient;
  const ids: Record<string, string> = {};
  let reportRun = "";

  beforeAll(async () => {
    server = await HttpServer.start();
    client = await server.connect();
    base = server.url.replace(/\/mcp$/, "");
    const add = async (name: string, args: Record<string, unknown>) => (ids[name] = (await client.tool("add_cron", { name, ...args })).job.id);
    await add("log-audit", { schedule: "0 9 * * 1-5", timezone: "Europe/Paris", prompt: OUTPUT, executor: "echo-stdin" });
    await add("live", { schedule: "*/30 * * * *", prompt: "800", executor: "sleep" });
    await add("nightly-backup", { schedule: "0 3 * * *", timezone: "America/New_York", prompt: "Back up the database and report the size", executor: "fail" });
    await add("keys", { schedule: "@hourly", prompt: "hello", executor: "echo" });
    await add("no-js", { schedule: "@hourly", prompt: "hello", executor: "echo" });
    reportRun = (await client.tool("run_now", { job: "log-audit", wait: true })).run.id;
    await client.tool("run_now", { job: "log-audit", wait: true });
    await client.tool("run_now", { job: "nightly-backup", wait: true });
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it("pauses a job and runs one now with clicks, and the run's end arrives over SSE without a reload", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: "America/New_York" });
    const { page, problems } = await openPage(context);
    await page.goto(base + "/");
    await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));

    const row = page.locator(`#job-${ids.live}`);
    await row.getByRole("button", { name: "Pause live" }).click();
    await expect.poll(() => row.locator(".badge").first().textContent()).toBe("paused");
    await row.getByRole("button", { name: "Resume live" }).click();
    await expect.poll(() => row.locator(".badge").first().textContent()).toBe("active");

    await row.getByRole("button", { name: "Run now live" }).click();
    await expect.poll(() => page.locator("#flash").textContent()).toContain("Started a run of live");
    // Running, then completed: both reach the page through /events.
    await expect.poll(() => row.locator(".strip i.st-running").count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => row.locator(".strip i.st-completed").count(), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => row.locator(".badge.st-completed").count()).toBe(1);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    // One format in every cell: relative words, the exact time in the job's zone and the
    // viewer's (New York, not the job's Paris) in the title, the instant in datetime.
    const next = page.locator(`#job-${ids["log-audit"]} td[data-label="Next run"] time`);
    expect(await next.textContent()).toMatch(/^in \d+[smhd]$/);
    expect(await next.getAttribute("title")).toMatch(/^\d+ \w{3}, \d\d:\d\d:\d\d Europe\/Paris · .+ your time \(America\/New_York\)$/);
    expect(await next.getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$/);
    expect(await page.locator("td time").evaluateAll((ts) => ts.every((t) => /^(in \d+[smhd]|\d+[smhd] ago|just now)$/.test(t.textContent ?? "")))).toBe(true);
    expect(problems).toEqual([]);
    await context.close();
  });

  it("shows a job's first run on its open page as it starts and ends", async () => {
    const { job } = await client.tool("add_cron", { name: "first-run", schedule: "0 1 * * *", prompt: "600", executor: "sleep" });
    const context = await browser.newContext();
    const { page, problems } = await openPage(context);
    await page.goto(`${base}/jobs/${job.id}`);
    expect(await page.locator("#runs-wrap").textContent()).toContain("No runs yet.");
    const { run } = await client.tool("run_now", { job: job.id });
    await expect.poll(() => page.locator(`#run-${run.id} .badge`).first().textContent(), { timeout: 10_000 }).toBe("running");
    await expect.poll(() => page.locator(`#run-${run.id} .badge`).first().textContent(), { timeout: 10_000 }).toBe("completed");
    expect(problems).toEqual([]);
    await context.close();
  });

  it("is usable from the keyboard: Enter on Pause keeps the focus on the same control", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, problems } = await openPage(context);
    await page.goto(base + "/");
    // The first Tab reaches the skip link.
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Skip to content");
    const key = `toggle-${ids.keys}`;
    await page.focus(`[data-key="${key}"]`);
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator(`[data-key="${key}"]`).textContent()).toBe("Resume");
    expect(await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.key)).toBe(key);
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator(`[data-key="${key}"]`).textContent()).toBe("Pause");
    expect(problems).toEqual([]);
    await context.close();
  });

  it("works without JavaScript: the forms post and the page comes back", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const { page, problems } = await openPage(context);
    await page.goto(`${base}/jobs/${ids["no-js"]}`);
    await page.getByRole("button", { name: "Pause no-js" }).click();
    await page.waitForURL(`${base}/jobs/${ids["no-js"]}`);
    expect(await page.locator("#job-head .badge").textContent()).toBe("paused");
    await page.getByRole("button", { name: "Run now no-js" }).click();
    // Without the script, run now opens the new run's page.
    await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    expect(await page.locator("h1").textContent()).toContain("Run of no-js");
    expect(problems).toEqual([]);
    await context.close();
  });

  it("renders the three pages on a desktop and a phone, with nothing wider than the screen (screenshots in .cache/screenshots)", async () => {
    for (const [label, viewport] of [
      ["desktop", { width: 1280, height: 800 }],
      ["phone", { width: 390, height: 844 }],
    ] as const) {
      const context = await browser.newContext({
        viewport,
        timezoneId: "Asia/Tokyo",
        isMobile: label === "phone",
        hasTouch: label === "phone",
        deviceScaleFactor: 1,
      });
      const { page, problems } = await openPage(context);
      for (const [name, url] of [
        ["jobs", "/"],
        ["job", `/jobs/${ids["log-audit"]}`],
        ["run", `/runs/${reportRun}`],
      ]) {
        await page.goto(base + url);
        await page.waitForLoadState("networkidle").catch(() => {});
        // The page itself never scrolls sideways (wide tables and code scroll inside their box).
        expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), `${name} on ${label}`).toBeLessThanOrEqual(0);
        await page.screenshot({ path: path.join(SHOTS, `dashboard-${name}-${label}.png`), fullPage: true });
      }
      // The report's table and code render; its image does not load.
      expect(await page.locator(".md table").count()).toBe(1);
      expect(await page.locator(".md img").count()).toBe(0);
      expect(await page.locator(".md a.image-link").textContent()).toBe("image: chart");
      expect(problems).toEqual([]);
      await context.close();
    }
  });
});

describe("dashboard login in Chromium", () => {
  const TOKEN = "browser-test-token-0123456789abcdef";
  let server: HttpServer;

  beforeAll(async () => {
    server = await HttpServer.start({ env: { AGENT_CRON_TOKEN: TOKEN } });
    base = server.url.replace(/\/mcp$/, "");
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it("asks for the token once and keeps an HttpOnly, SameSite=Strict cookie that scripts cannot read", async () => {
    const context = await browser.newContext();
    const { page, problems } = await openPage(context);
    const first = await page.goto(base + "/");
    expect(first?.status()).toBe(401);
    await page.getByLabel("Token").fill(TOKEN);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL(base + "/");
    expect(await page.locator("h1").textContent()).toBe("Jobs");
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    expect(cookie.value).not.toContain(TOKEN);
    expect(await page.evaluate(() => document.cookie)).toBe("");
    expect(await page.content()).not.toContain(TOKEN);
    // Logged in once: the next visit goes straight to the page.
    expect((await page.goto(base + "/"))?.status()).toBe(200);
    expect(problems.filter((p) => !p.includes("401"))).toEqual([]);
    await context.close();
  });
});
