/**
 * The MCP App (SPEC §12): the jobs view `ui://agent-cron/jobs` as a host that renders apps
 * finds it (the tool's `_meta.ui`, then `resources/read`), and the same tools as a host that
 * ignores apps sees them. Through the SDK client against the built server. The page itself,
 * rendered in Chromium under the spec's CSP, is tested in test/all/app-view-browser.test.ts.
 */
import { getToolUiResourceUri } from "@modelcontextprotocol/ext-apps/app-bridge";
import { RESOURCE_MIME_TYPE, RESOURCE_URI_META_KEY, registerAppTool } from "@modelcontextprotocol/ext-apps/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestServer, textOf, type Structured } from "../helpers/server.js";

const VIEW_URI = "ui://agent-cron/jobs";

describe("the MCP App view", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await TestServer.start();
    await s.tool("add_cron", { name: "log-audit", schedule: "0 9 * * 1-5", timezone: "Europe/Paris", prompt: "Audit the logs" });
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  it("list_crons and get_cron name the view in _meta.ui.resourceUri and in the legacy key, as ext-apps' registerAppTool writes them; no other tool does", async () => {
    const { tools } = await s.client.listTools();
    // What ext-apps' own helper would register for a tool of ours.
    let helperMeta: unknown;
    registerAppTool(
      { registerTool: ((_name: string, config: { _meta: unknown }) => void (helperMeta = config._meta)) as never },
      "list_crons",
      { _meta: { ui: { resourceUri: VIEW_URI } } },
      (() => ({ content: [] })) as never,
    );
    expect(helperMeta).toEqual({ ui: { resourceUri: VIEW_URI }, [RESOURCE_URI_META_KEY]: VIEW_URI });

    for (const name of ["list_crons", "get_cron"]) {
      const tool = tools.find((t) => t.name === name)!;
      expect(tool._meta, name).toEqual(helperMeta);
      // How a host (ext-apps' AppBridge side) finds the view of a tool.
      expect(getToolUiResourceUri(tool)).toBe(VIEW_URI);
    }
    const others = tools.filter((t) => t.name !== "list_crons" && t.name !== "get_cron");
    // The eleven others, audit (this round) among them, carry no view.
    expect(others.map((t) => t.name)).toContain("audit");
    expect(others.length).toBe(11);
    for (const t of others) expect(getToolUiResourceUri(t), t.name).toBeUndefined();
  });

  it("lists the view and reads it as text/html;profile=mcp-app, asking the host for a border and no CSP domains", async () => {
    const listed = (await s.client.listResources()).resources.find((r) => r.uri === VIEW_URI);
    expect(listed).toMatchObject({ uri: VIEW_URI, mimeType: RESOURCE_MIME_TYPE, _meta: { ui: { prefersBorder: true } } });
    expect(RESOURCE_MIME_TYPE).toBe("text/html;profile=mcp-app");

    const { contents } = await s.client.readResource({ uri: VIEW_URI });
    expect(contents).toHaveLength(1);
    const page = contents[0] as { uri: string; mimeType: string; text: string; _meta?: { ui?: Record<string, unknown> } };
    expect(page.uri).toBe(VIEW_URI);
    expect(page.mimeType).toBe(RESOURCE_MIME_TYPE);
    // No csp: the host applies the spec's restrictive default (nothing remote, no connect-src).
    expect(page._meta?.ui).toEqual({ prefersBorder: true });
    expect(page.text).toMatch(/^<!doctype html>/i);
  });

  it("is one self-contained page: inline script and style, nothing it would load from anywhere", async () => {
    const { contents } = await s.client.readResource({ uri: VIEW_URI });
    const html = (contents[0] as { text: string }).text;
    const scripts = [...html.matchAll(/<script\b([^>]*)>/gi)];
    expect(scripts).toHaveLength(1);
    expect(scripts[0][1]).toBe(""); // no src, no type=module: one classic inline script
    expect(html.match(/<style\b[^>]*>/gi)).toHaveLength(1);
    // The markup outside the script and style: no element that fetches, no attribute that points anywhere.
    const markup = html.replace(/<script>[\s\S]*<\/script>/i, "").replace(/<style>[\s\S]*<\/style>/i, "");
    expect(markup).not.toMatch(/<(link|img|iframe|object|embed|base|source|video|audio)\b/i);
    expect(markup).not.toMatch(/\s(src|href|srcset|action|poster)\s*=/i);
    const style = /<style>([\s\S]*)<\/style>/i.exec(html)![1];
    expect(style).not.toMatch(/@import|url\(/i);
    // The script is ext-apps' App (the handshake of SEP-1865) with the view, and never evaluates strings.
    const script = /<script>([\s\S]*)<\/script>/i.exec(html)![1];
    expect(script).toContain("ui/initialize");
    expect(script).toContain("ui/notifications/tool-result");
    expect(script).not.toMatch(/\beval\(|new Function\(|importScripts\(|\bfetch\(|XMLHttpRequest|WebSocket\(|EventSource\(|sendBeacon/);
    // Small enough to read once per render: ext-apps, the SDK's protocol and zod, English only.
    expect(Buffer.byteLength(html)).toBeLessThan(400 * 1024);
  });

  it("leaves the answers as they are for a host that ignores apps: the same summary, JSON text block and structuredContent, no _meta", async () => {
    const list = await s.call("list_crons", {});
    expect(list.isError).toBeFalsy();
    expect(list._meta).toBeUndefined();
    const listed = list.structuredContent as Structured;
    expect(Object.keys(listed)).toEqual(["summary", "jobs", "total", "next_cursor", "timezone"]);
    expect(list.content).toEqual([
      { type: "text", text: listed.summary },
      { type: "text", text: JSON.stringify(listed) },
    ]);
    expect(listed.jobs.map((j: Structured) => j.name)).toEqual(["log-audit"]);

    const one = await s.call("get_cron", { job: "log-audit" });
    expect(one._meta).toBeUndefined();
    const job = one.structuredContent as Structured;
    expect(Object.keys(job)).toEqual(["summary", "job", "description", "next_runs", "next_runs_utc", "recent_runs"]);
    expect(one.content).toHaveLength(2);
    expect(textOf(one)).toContain(job.summary);
  });
});
