import { fileURLToPath } from "node:url";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";

/**
 * The MCP App view (SPEC §12; MCP Apps, SEP-1865): `list_crons` and `get_cron` name this
 * resource in their `_meta.ui`, and a host that renders apps shows it beside their result.
 *
 * The two protocol constants are ext-apps' `RESOURCE_MIME_TYPE` and `RESOURCE_URI_META_KEY`,
 * written out so that serving stdio does not load ext-apps' server module (30 KB of
 * minified code beside the SDK's) for two strings; test/e2e/app-view.test.ts checks that
 * they still agree with ext-apps.
 */
export const APP_VIEW_URI = "ui://agent-cron/jobs";
export const APP_VIEW_MIME = "text/html;profile=mcp-app";
const LEGACY_RESOURCE_URI_KEY = "ui/resourceUri";

/**
 * What `list_crons` and `get_cron` carry: `_meta.ui.resourceUri`, and the flat key that
 * hosts from before ext-apps 1.0 read (ext-apps' `registerAppTool` sets both the same way).
 */
export const APP_VIEW_TOOL_META = { ui: { resourceUri: APP_VIEW_URI }, [LEGACY_RESOURCE_URI_KEY]: APP_VIEW_URI };

/**
 * `npm run build` (scripts/bundle.mjs) writes the page beside the server's bundle, with its
 * script and stylesheet inlined, as a module whose default export is the HTML (the package
 * ships JavaScript only). It is imported when a host first asks for it, not at start-up: a
 * client that renders no apps never loads it.
 */
const VIEW_MODULE = new URL("./app-view.js", import.meta.url);

// The view fetches nothing and embeds nothing, so it needs no CSP domains: hosts apply the
// spec's restrictive default (no connect-src, no remote scripts, styles or images).
const RESOURCE_UI_META = { ui: { prefersBorder: true } };

export function registerAppView(server: McpServer): void {
  server.registerResource(
    "jobs-view",
    APP_VIEW_URI,
    {
      title: "Jobs view (MCP App)",
      description: "The interactive view of list_crons and get_cron results, for hosts that render MCP Apps",
      mimeType: APP_VIEW_MIME,
      _meta: RESOURCE_UI_META,
    },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: APP_VIEW_MIME, text: await readView(), _meta: RESOURCE_UI_META }] }),
  );
}

async function readView(): Promise<string> {
  try {
    return ((await import(VIEW_MODULE.href)) as { default: string }).default;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") throw err;
    throw new Error(`The jobs view is not built: ${fileURLToPath(VIEW_MODULE)} is missing; run "npm run build".`);
  }
}
