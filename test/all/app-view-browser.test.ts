/**
 * The jobs view (MCP App, ui://agent-cron/jobs) rendered as a host renders it: headless
 * Chromium (Debian's, scripts/install-chromium.sh) loads a minimal host page that embeds the
 * page read from the built server in a sandboxed iframe, served under the MCP Apps default
 * CSP, and talks to it with ext-apps' own host side (AppBridge). The host posts a real
 * list_crons / get_cron result; the view's tool calls go through the bridge to the SDK client
 * of this test and on to the server, so a button changes the real job.
 *
 * Screenshots land in .cache/screenshots/ (gitignored) for a person to look at.
 */
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { build } from "esbuild";
import { chromium, type Browser, type Frame, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, TestServer, waitFor, type Structured } from "../helpers/server.js";

const VIEW_URI = "ui://agent-cron/jobs";
const SCREENSHOTS = path.join(ROOT, ".cache", "screenshots");
/** SEP-1865: what a host must apply when the resource declares no CSP. */
const DEFAULT_CSP =
  "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self' data:; connect-src 'none'";

/** The host page's script: ext-apps' AppBridge, as a host embeds a view. */
const HOST_SCRIPT = `
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";
window.startHost = async ({ toolName, args, result, hostContext, serverTools }) => {
  const iframe = document.createElement("iframe");
  // As hosts do: scripts, but an opaque origin (no allow-same-origin).
  iframe.setAttribute("sandbox", "allow-scripts");
  iframe.style.cssText = "width: 100%; height: 200px; border: 1px solid #888; border-radius: 8px;";
  document.getElementById("chat").append(iframe);
  const capabilities = serverTools ? { serverTools: {}, updateModelContext: { text: {} } } : {};
  const bridge = new AppBridge(null, { name: "test-host", version: "1.0.0" }, capabilities, {
    hostContext: { ...hostContext, toolInfo: { tool: { name: toolName, inputSchema: { type: "object" } } } },
  });
  bridge.oncalltool = (params) => window.agentCronCallTool(params);
  bridge.onupdatemodelcontext = async (params) => { window.modelContext = params; return {}; };
  bridge.onsizechange = ({ height }) => { if (height) iframe.style.height = Math.ceil(height) + 2 + "px"; };
  bridge.oninitialized = async () => {
    await bridge.sendToolInput({ arguments: args });
    await bridge.sendToolResult(result);
  };
  // The bridge listens before the view loads, so its ui/initialize is not missed.
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  iframe.src = "/view";
};
`;

describe("the jobs view in a browser host", () => {
  let s: TestServer;
  let browser: Browser;
  let http: Server;
  let origin: string;
  let viewHtml: string;
  let hostScript: string;
  /** Every path the browser asked the host server for, and every CSP report. */
  const requested: string[] = [];
  const cspReports: string[] = [];

  beforeAll(async () => {
    s = await TestServer.start();
    await s.tool("add_cron", { name: "log-audit", schedule: "0 9 * * 1-5", timezone: "Europe/Paris", prompt: "Summarise new errors in /srv/app/logs" });
    await s.tool("add_cron", { name: "deploy-check", schedule: "@every 15m", timezone: "America/New_York", prompt: "Check that staging answers /health" });
    await s.tool("add_cron", { name: "weekly-report", schedule: "0 8 * * 1", timezone: "Europe/Paris", prompt: "Write the weekly report", enabled: false });
    await s.tool("run_now", { job: "log-audit", wait: true });
    await s.tool("run_now", { job: "log-audit", wait: true });

    const { contents } = await s.client.readResource({ uri: VIEW_URI });
    viewHtml = (contents[0] as { text: string }).text;
    const bundled = await build({
      stdin: { contents: HOST_SCRIPT, resolveDir: ROOT, loader: "js" },
      bundle: true,
      write: false,
      format: "iife",
      platform: "browser",
      logLevel: "warning",
    });
    hostScript = bundled.outputFiles[0].text;

    http = createServer((req, res) => {
      requested.push(req.url ?? "");
      if (req.url === "/") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
        res.end(`<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>test host</title>
<style>body { font: 14px sans-serif; margin: 16px; background: #ddd; } #chat { max-width: 880px; }</style></head>
<body><div id="chat"><p>assistant: here are your jobs</p></div><script>${hostScript.replace(/<\/script/gi, "<\\/script")}</script></body></html>`);
      } else if (req.url === "/view") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": `${DEFAULT_CSP}; report-uri /csp-report` });
        res.end(viewHtml);
      } else if (req.url === "/csp-report") {
        let body = "";
        req.on("data", (c: Buffer) => (body += c));
        req.on("end", () => {
          cspReports.push(body);
          res.writeHead(204).end();
        });
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    mkdirSync(SCREENSHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => (http ? http.close(resolve) : resolve(undefined)));
    await s?.cleanup();
  });

  interface Host {
    page: Page;
    view: Frame;
    calls: { name: string; arguments?: Record<string, unknown> }[];
    consoleErrors: string[];
  }

  async function openHost(
    toolName: string,
    args: Record<string, unknown>,
    opts: { hostContext?: Record<string, unknown>; serverTools?: boolean } = {},
  ): Promise<Host> {
    const result = await s.call(toolName, args);
    const page = await browser.newPage({ viewport: { width: 920, height: 760 } });
    const calls: Host["calls"] = [];
    const consoleErrors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(e.message));
    // The host's link to the MCP server: the real server, through this test's SDK client.
    await page.exposeFunction("agentCronCallTool", async (params: { name: string; arguments?: Record<string, unknown> }) => {
      calls.push({ name: params.name, arguments: params.arguments });
      return s.client.callTool(params);
    });
    await page.goto(origin + "/");
    await page.evaluate((a) => (window as unknown as { startHost(a: unknown): Promise<void> }).startHost(a), {
      toolName,
      args,
      result,
      serverTools: opts.serverTools ?? true,
      hostContext: opts.hostContext ?? { theme: "light", locale: "en-GB", timeZone: "Europe/Paris" },
    });
    const view = await waitFor(() => page.frames().find((f) => f.url().endsWith("/view")), { what: "the view's frame" });
    return { page, view, calls, consoleErrors };
  }

  const rowOf = (h: Host, name: string) => h.view.locator("tr[data-job]", { hasText: name });

  it("renders a list_crons result in the host's dark theme, and Pause, Resume and Run now change the real job through the host", async () => {
    const h = await openHost(
      "list_crons",
      {},
      {
        hostContext: {
          theme: "dark",
          locale: "en-GB",
          timeZone: "Europe/London",
          styles: { variables: { "--color-background-primary": "#101820", "--color-text-primary": "#e8eef4" } },
        },
      },
    );
    await h.view.locator("tr[data-job]").nth(2).waitFor();
    expect(await h.view.locator("tr[data-job]").count()).toBe(3);
    expect(await h.view.locator("h1").textContent()).toBe("Scheduled jobs · 3");

    const audit = rowOf(h, "log-audit");
    await expect.poll(() => audit.textContent()).toContain("At 09:00 AM, Monday through Friday");
    const auditText = (await audit.textContent())!;
    expect(auditText).toContain("Europe/Paris");
    expect(auditText).toContain("Summarise new errors in /srv/app/logs");
    expect(await audit.locator("[data-state]").textContent()).toBe("active");
    expect(await audit.locator("[data-status]").textContent()).toBe("completed");
    // The viewer is in London, the job in Paris: both wall clocks are shown.
    expect(auditText).toMatch(/09:00 Europe\/Paris/);
    expect(await rowOf(h, "weekly-report").locator("[data-state]").textContent()).toBe("paused");
    expect(await rowOf(h, "deploy-check").textContent()).toContain("never run");

    // The host's theme and style variables are the view's.
    const look = await h.view.evaluate(() => ({
      theme: document.documentElement.dataset.theme,
      bg: getComputedStyle(document.body).backgroundColor,
      fg: getComputedStyle(document.body).color,
    }));
    expect(look).toEqual({ theme: "dark", bg: "rgb(16, 24, 32)", fg: "rgb(232, 238, 244)" });
    await h.page.screenshot({ path: path.join(SCREENSHOTS, "app-view-list-dark.png"), fullPage: true });

    const auditId = (await s.job("log-audit")).id;
    await audit.locator('button[data-action="pause"]').click();
    await audit.locator('button[data-action="resume"]').waitFor();
    expect(await audit.locator("[data-state]").textContent()).toBe("paused");
    expect(await audit.locator(".row-note").textContent()).toBe("Paused.");
    expect((await s.job("log-audit")).state).toBe("paused");

    await audit.locator('button[data-action="resume"]').click();
    await audit.locator('button[data-action="pause"]').waitFor();
    expect(await audit.locator("[data-state]").textContent()).toBe("active");
    expect(await audit.locator(".row-note").textContent()).toMatch(/^Resumed; next run \w{3},? \d+ \w{3},? 08:00\.$/); // 09:00 in Paris is 08:00 for a viewer in London
    expect((await s.job("log-audit")).state).toBe("active");

    const deploy = rowOf(h, "deploy-check");
    await deploy.locator('button[data-action="run_now"]').click();
    await expect.poll(() => deploy.locator("[data-status]").textContent()).toBe("running");
    const deployRuns = await s.runRows("deploy-check");
    expect(deployRuns.map((r: Structured) => r.trigger)).toEqual(["manual"]);

    const deployId = (await s.job("deploy-check")).id;
    expect(h.calls).toEqual([
      { name: "pause", arguments: { job: auditId } },
      { name: "resume", arguments: { job: auditId } },
      { name: "run_now", arguments: { job: deployId } },
    ]);
    // The model hears of what the user did, through ui/update-model-context.
    const context = await h.page.evaluate(() => (window as unknown as { modelContext?: { content: { text: string }[] } }).modelContext);
    expect(context!.content[0].text.split("\n")).toEqual([
      expect.stringMatching(/^In the agent-cron jobs view, the user paused "log-audit": Paused "log-audit"/),
      expect.stringMatching(/^In the agent-cron jobs view, the user resumed "log-audit": Resumed "log-audit"/),
      expect.stringMatching(/^In the agent-cron jobs view, the user started a run of "deploy-check": Run .* of job "deploy-check"/),
    ]);

    // Refresh calls list_crons again with the host's arguments; the run has ended by now.
    await s.waitForRuns("deploy-check", (runs) => runs.every((r) => r.status === "completed"));
    await h.view.locator('button[data-action="refresh"]').click();
    await expect.poll(() => deploy.locator("[data-status]").textContent()).toBe("completed");
    expect(h.calls.at(-1)).toEqual({ name: "list_crons", arguments: {} });
    await h.page.screenshot({ path: path.join(SCREENSHOTS, "app-view-list-dark-after.png"), fullPage: true });
    expect(h.consoleErrors).toEqual([]);
    await h.page.close();
  });

  it("keeps every row where it was after Pause and Resume: the button under the pointer is still the same job's (wide and narrow hosts)", async () => {
    for (const width of [920, 420]) {
      const h = await openHost("list_crons", {});
      await h.page.setViewportSize({ width, height: 900 });
      await h.view.locator("tr[data-job]").nth(2).waitFor();
      for (const [press, then] of [
        ["pause", "resume"],
        ["resume", "pause"],
      ] as const) {
        const audit = rowOf(h, "log-audit");
        const pressed = audit.locator(`button[data-action="${press}"]`);
        await pressed.scrollIntoViewIfNeeded();
        const box = (await pressed.boundingBox())!;
        const frame = (await h.page.locator("iframe").boundingBox())!;
        const x = box.x + box.width / 2;
        const y = box.y + box.height / 2;
        await h.page.mouse.click(x, y);
        await audit.locator(`button[data-action="${then}"]:not([disabled])`).waitFor();
        // What is under the pointer now, in the view's own coordinates.
        const under = await h.view.evaluate(
          ([px, py]) => {
            const el = document.elementFromPoint(px, py);
            return {
              job: el?.closest("tr[data-job]")?.querySelector(".name")?.textContent ?? null,
              action: el?.closest("button")?.getAttribute("data-action") ?? null,
            };
          },
          [x - frame.x - 1, y - frame.y - 1],
        );
        expect(under, `${width} px wide, after ${press}`).toEqual({ job: "log-audit", action: then });
      }
      if (width === 420) await h.page.screenshot({ path: path.join(SCREENSHOTS, "app-view-list-narrow-after-pause.png"), fullPage: true });
      await h.page.close();
    }
  });

  it("renders a get_cron result: the job, its next runs and its recent runs, in the light theme; Run now adds a run", async () => {
    const h = await openHost("get_cron", { job: "log-audit" });
    await h.view.locator("tr[data-run]").first().waitFor();
    const view = await s.tool("get_cron", { job: "log-audit" });
    expect(await h.view.locator("tr[data-run]").count()).toBe(view.recent_runs.length);
    expect(await h.view.locator("h1").textContent()).toBe("log-audit");
    const card = h.view.locator("section.card");
    expect(await card.textContent()).toContain("At 09:00 AM, Monday through Friday");
    expect(await card.textContent()).toContain("0 9 * * 1-5");
    expect(await card.locator("dd div").count()).toBe(3); // the next three runs
    const firstRun = h.view.locator("tr[data-run]").first();
    expect(await firstRun.locator("[data-status]").textContent()).toBe("completed");
    expect(await firstRun.textContent()).toContain("Summarise new errors in /srv/app/logs"); // the echo agent's answer
    const look = await h.view.evaluate(() => ({ theme: document.documentElement.dataset.theme, bg: getComputedStyle(document.body).backgroundColor }));
    expect(look).toEqual({ theme: "light", bg: "rgb(255, 255, 255)" });

    await card.locator('button[data-action="run_now"]').click();
    await expect.poll(() => h.view.locator("tr[data-run]").count()).toBe(view.recent_runs.length + 1);
    const started = h.view.locator("tr[data-run]").first();
    expect(await started.locator("[data-status]").textContent()).toBe("running");
    expect(await card.locator(".row-note").textContent()).toBe(`Run ${(await started.getAttribute("data-run"))!.slice(0, 8)} started.`);
    await h.page.screenshot({ path: path.join(SCREENSHOTS, "app-view-job-light.png"), fullPage: true });
    expect(h.consoleErrors).toEqual([]);
    await h.page.close();
  });

  it("in a host that does not pass tool calls on, shows the jobs without buttons and says why; an error result is shown as its sentence", async () => {
    const h = await openHost("list_crons", { state: "active" }, { serverTools: false });
    await h.view.locator("tr[data-job]").first().waitFor();
    expect(await h.view.locator("button").count()).toBe(0);
    expect(await h.view.locator("main").textContent()).toContain("This host does not pass the view's calls on to agent-cron");
    // A narrow host (a side panel): one block per job.
    await h.page.setViewportSize({ width: 420, height: 760 });
    await expect.poll(() => h.view.evaluate(() => getComputedStyle(document.querySelector("thead")!).display)).toBe("none");
    await h.page.screenshot({ path: path.join(SCREENSHOTS, "app-view-list-narrow-no-tools.png"), fullPage: true });
    await h.page.close();

    const e = await openHost("get_cron", { job: "no-such-job" });
    await expect.poll(() => e.view.locator(".note.error").textContent()).toMatch(/^get_cron failed: /);
    await e.page.close();
  });

  it("renders a run's answer as Markdown (headings, lists, code), and HTML in it stays text: a script in the output does not run", async () => {
    const answer = [
      "## Errors since yesterday",
      "",
      "- `TimeoutError` in **checkout** (3×)",
      "- see [the runbook](https://example.com/runbook)",
      "",
      "<script>window.parent.postMessage('pwned', '*'); document.title = 'pwned';</script>",
      '<img src="x" onerror="document.title = \'pwned\'">',
      "",
      "```",
      "08:12:03 checkout TimeoutError",
      "```",
    ].join("\n");
    await s.tool("add_cron", { name: "md-report", schedule: "@daily", prompt: answer, executor: "echo-stdin" });
    await s.tool("run_now", { job: "md-report", wait: true });
    const h = await openHost("get_cron", { job: "md-report" });
    const md = h.view.locator("tr[data-run] .md").first();
    await md.waitFor();
    expect(await md.locator("h2").textContent()).toBe("Errors since yesterday");
    expect(await md.locator("li").count()).toBe(2);
    expect(await md.locator("li code").textContent()).toBe("TimeoutError");
    expect(await md.locator("li strong").textContent()).toBe("checkout");
    expect(await md.locator("a").getAttribute("href")).toBe("https://example.com/runbook");
    expect(await md.locator("pre code").textContent()).toBe("08:12:03 checkout TimeoutError\n");
    // The HTML of the answer is shown as text, never made into elements.
    expect(await md.locator("script, img, [onerror]").count()).toBe(0);
    expect(await md.textContent()).toContain("<script>window.parent.postMessage");
    await new Promise((r) => setTimeout(r, 300));
    expect(await h.view.evaluate(() => document.title)).toBe("agent-cron jobs");
    await h.page.screenshot({ path: path.join(SCREENSHOTS, "app-view-job-markdown.png"), fullPage: true });
    expect(h.consoleErrors).toEqual([]);
    await h.page.close();
  });

  it("loaded nothing but the host page and the view, and broke no rule of the default CSP", async () => {
    // Reports are sent after the fact: give them a moment.
    await new Promise((r) => setTimeout(r, 500));
    expect(cspReports).toEqual([]);
    expect(new Set(requested)).toEqual(new Set(["/", "/view"]));
  });
});
