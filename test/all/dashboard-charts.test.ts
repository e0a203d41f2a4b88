import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type BrowserContextOptions, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpServer, type HttpClient } from "../helpers/http.js";
import { ROOT, fixture } from "../helpers/server.js";

/**
 * The dashboard's pictures (SPEC §22) in headless Chromium: the timeline of the past and next
 * day's occurrences and the cost per day on the jobs page, a job's durations and outcomes on
 * its page. Drawn by the server as SVG: they are all there with JavaScript off, with one mark
 * per occurrence of a history made here, and nothing on the page runs a script of its own.
 *
 * Screenshots (light, dark, phone) go to .cache/screenshots/; with UPDATE_SCREENSHOTS=1 to
 * docs/screenshots/, the ones the README lists.
 */

const SHOTS = process.env.UPDATE_SCREENSHOTS === "1" ? path.join(ROOT, "docs", "screenshots") : path.join(ROOT, ".cache", "screenshots");

describe("the dashboard's pictures in Chromium", () => {
  let browser: Browser;
  let server: HttpServer;
  let client: HttpClient;
  let base = "";
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    mkdirSync(SHOTS, { recursive: true });
    server = await HttpServer.start({
      config: { timezone: "UTC", executors: { claude: { type: "claude-code", bin: fixture("fake-claude.mjs"), sandbox: "none" } } },
    });
    client = await server.connect();
    base = server.url.replace(/\/mcp$/, "");
    const add = async (name: string, args: Record<string, unknown>) => (ids[name] = (await client.tool("add_cron", { name, ...args })).job.id);
    // Next 24 hours: every third hour is 8 occurrences, once a day is 1, a paused job none. Their
    // minute is half an hour from now, so no occurrence falls due while the test runs (a run at
    // 03:00 would add a mark the history made here does not have).
    const now = new Date();
    const minute = (now.getUTCMinutes() + 30) % 60;
    await add("triage", { schedule: `${minute} */3 * * *`, prompt: "Triage the new issues", executor: "claude" });
    await add("nightly-backup", { schedule: `${minute} ${(now.getUTCHours() + 12) % 24} * * *`, prompt: "Back up the database", executor: "fail" });
    await add("paused-digest", { schedule: "@hourly", prompt: "digest", executor: "echo", enabled: false });
    // Past 24 hours: 3 completed (each $0.0123), 2 failed, 1 completed.
    for (let i = 0; i < 3; i++) await client.tool("run_now", { job: "triage", wait: true });
    for (let i = 0; i < 2; i++) await client.tool("run_now", { job: "nightly-backup", wait: true });
    await client.tool("run_now", { job: "paused-digest", wait: true });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.cleanup();
  });

  async function open(url: string, options: BrowserContextOptions = {}): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1, ...options });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    page.on("pageerror", (e) => problems.push(e.message));
    const response = await page.goto(base + url);
    expect(response?.headers()["content-security-policy"]).toMatch(/^default-src 'self';/);
    return { page, problems, close: () => context.close() };
  }

  const count = (page: Page, selector: string) => page.locator(selector).count();

  it("draws the jobs page's timeline and cost per day without a script: one mark per occurrence, coloured by outcome, with a legend and text", async () => {
    const { page, problems, close } = await open("/", { javaScriptEnabled: false });
    const timeline = page.locator("svg.timeline");
    expect(await timeline.getAttribute("role")).toBe("img");
    expect(await count(page, "svg.timeline g.lane")).toBe(3);
    expect(await count(page, "svg.timeline rect.m-completed")).toBe(4);
    expect(await count(page, "svg.timeline rect.m-failed")).toBe(2);
    expect(await count(page, "svg.timeline rect.m-due")).toBe(9);
    expect(await count(page, "svg.timeline rect.m")).toBe(15);
    // Past marks lead to their runs; each mark says what it is.
    expect(await count(page, 'svg.timeline a[href^="/runs/"] rect.m')).toBe(6);
    expect(await page.locator("svg.timeline rect.m-failed title").first().textContent()).toMatch(/^nightly-backup · failed · \d+ \w{3}, \d\d:\d\d:\d\d UTC$/);
    expect(await page.locator("#timeline-summary").textContent()).toBe("Past 24 hours: 4 completed, 2 failed. Next 24 hours: 9 due. 3 jobs.");
    expect(await page.locator("figure:has(svg.timeline) .legend li").allTextContents()).toEqual(["completed", "failed", "due"]);
    // The triage lane's next occurrences are three hours apart, right of "now" (the middle).
    const width = (await timeline.boundingBox())!.width;
    const xs = await page
      .locator("svg.timeline g.lane", { hasText: "triage" })
      .locator("rect.m-due")
      .evaluateAll((rs) => rs.map((r) => (r as SVGRectElement).x.baseVal.value));
    expect(xs.every((x) => x > width / 2)).toBe(true);
    const gaps = xs.slice(1).map((x, i) => x - xs[i]);
    for (const g of gaps) expect(g).toBeCloseTo(width / 16, 0);

    // Cost: the three claude runs, on the day (UTC) each started: one bar, two across midnight.
    const { runs } = await client.tool("list_runs", { job: "triage" });
    const days = new Set(runs.map((r: { started_at: string }) => r.started_at.slice(0, 10)));
    expect(await count(page, "svg.cost rect.m-cost")).toBe(days.size);
    if (days.size === 1) expect(await page.locator("svg.cost rect.m-cost title").textContent()).toMatch(/^\d+ \w{3}: \$0\.0369 from 3 of 6 runs$/);
    expect(await page.locator("#cost-summary").textContent()).toBe(
      "$0.0369 over the last 14 days, from 3 of 6 runs that reported a cost; the most in a day $0.0369.",
    );
    expect(await count(page, "svg.cost text.tick")).toBe(15); // the top value and 14 days
    // Nothing in the pictures could run a script.
    expect(await count(page, "svg script, svg [onload], svg [onclick], svg foreignObject")).toBe(0);
    expect(problems).toEqual([]);
    await close();
  });

  it("draws a job's duration and outcome over its last runs on its page", async () => {
    const { page, problems, close } = await open(`/jobs/${ids["nightly-backup"]}`, { javaScriptEnabled: false });
    expect(await count(page, "svg.durations rect.m")).toBe(2);
    expect(await count(page, "svg.durations rect.m-failed")).toBe(2);
    expect(await page.locator("#durations-summary").textContent()).toMatch(
      /^Last 2 runs, oldest on the left: 2 failed\. Median duration [\d.]+ (ms|s), longest [\d.]+ (ms|s)\.$/,
    );
    // The longest run's bar is the full height (80 px); bars are the outcome's colour.
    const heights = await page.locator("svg.durations rect.m").evaluateAll((rs) => rs.map((r) => (r as SVGRectElement).height.baseVal.value));
    expect(Math.max(...heights)).toBe(80);
    expect(problems).toEqual([]);
    await close();
  });

  it("looks right in light and dark and at phone width, with the page's script on and no CSP violation (screenshots)", async () => {
    for (const [look, options] of [
      ["light", { colorScheme: "light" }],
      ["dark", { colorScheme: "dark" }],
      ["phone", { colorScheme: "dark", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }],
    ] as [string, BrowserContextOptions][]) {
      const jobs = await open("/", options);
      // The colours are the stylesheet's, for the viewer's scheme: green completed, red failed.
      const fill = (sel: string) =>
        jobs.page
          .locator(sel)
          .first()
          .evaluate((r) => getComputedStyle(r).fill);
      const [ok, bad] = [await fill("svg.timeline rect.m-completed"), await fill("svg.timeline rect.m-failed")];
      expect(ok).toBe(look === "light" ? "rgb(23, 128, 61)" : "rgb(76, 199, 122)");
      expect(bad).toBe(look === "light" ? "rgb(192, 38, 45)" : "rgb(255, 107, 107)");
      // Nothing is wider than the screen; on a phone every other tick is left out.
      expect(await jobs.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
      const ticks = await jobs.page.locator("svg.timeline text.tick").evaluateAll((ts) => ts.filter((t) => getComputedStyle(t).display !== "none").length);
      expect(ticks).toBe(look === "phone" ? 5 : 9);
      await jobs.page.locator("#activity").screenshot({ path: path.join(SHOTS, `dashboard-activity-${look}.png`) });
      expect(jobs.problems).toEqual([]);
      await jobs.close();

      const job = await open(`/jobs/${ids.triage}`, options);
      expect(await count(job.page, "svg.durations rect.m-completed")).toBe(3);
      await job.page.locator("#job-chart").screenshot({ path: path.join(SHOTS, `dashboard-job-durations-${look}.png`) });
      expect(job.problems).toEqual([]);
      await job.close();
    }
  });
});
