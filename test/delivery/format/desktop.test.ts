import { describe, expect, it } from "vitest";
import { DESKTOP_BODY_MAX, POWERSHELL_APP_ID, appleScriptString, desktopCommand, desktopText, powerShellString } from "../../../src/delivery/format/desktop.js";
import { truncationNote } from "../../../src/delivery/format/message.js";
import { CRON_LINK, longAnswer, message, wellFormed } from "./fixtures.js";

const TRICKY = `it's "quoted" \\back\\slash ‘smart’ ’ $(Get-Date) \`tick\` %PATH% <b>&amp;`;

/** Reads an AppleScript string literal the way AppleScript does. */
function readAppleScript(literal: string): string {
  expect(literal.startsWith('"') && literal.endsWith('"')).toBe(true);
  const inner = literal.slice(1, -1);
  expect(/(^|[^\\])(\\\\)*"/.test(inner)).toBe(false); // no unescaped quote inside
  return inner.replace(/\\(.)/g, (_m, c: string) => ({ n: "\n", t: "\t", r: "\r" })[c] ?? c);
}

/** The single-quoted PowerShell strings of a script, read as PowerShell reads them. */
function readPowerShellStrings(script: string): string[] {
  const out: string[] = [];
  const q = /['\u2018\u2019\u201A\u201B]/;
  for (let i = 0; i < script.length; i++) {
    if (!q.test(script[i])) continue;
    let s = "";
    for (i++; i < script.length; i++) {
      if (q.test(script[i])) {
        if (q.test(script[i + 1] ?? "")) s += script[++i];
        else break;
      } else s += script[i];
    }
    out.push(s);
  }
  return out;
}

describe("desktopCommand", () => {
  it("runs notify-send on Linux, critical for failures, its body escaped as markup", () => {
    const ok = desktopCommand(message({ response: "All **12** < 13 & fine" }), "linux");
    expect(ok).toEqual([
      "notify-send",
      "--app-name=agent-cron",
      "--",
      "✅ log-audit completed in 42 s",
      "All 12 &lt; 13 &amp; fine\ntook 42 s · $0.0123 · next run 2026-12-02 09:00 (Europe/Paris)",
    ]);
    const failed = desktopCommand(message({ event: "failed", status: "failed", error: "Boom.", response: "" }), "linux");
    expect(failed.slice(0, 4)).toEqual(["notify-send", "--urgency=critical", "--app-name=agent-cron", "--"]);
    expect(failed[4]).toBe("❌ log-audit failed: boom");
    // the summary is never markup: it stays as it is
    const tricky = desktopCommand(message({ jobName: TRICKY }), "linux");
    expect(tricky[2]).toBe("--");
    expect(tricky[3]).toBe(`✅ ${TRICKY} completed in 42 s`);
  });

  it("uses notify-send on other Unixes too", () => {
    expect(desktopCommand(message(), "freebsd")[0]).toBe("notify-send");
  });

  it("runs osascript on macOS with the texts as AppleScript strings, quotes and backslashes escaped", () => {
    const msg = message({ jobName: TRICKY, response: `line one "x"\nline \\two\\ \t tab` });
    const argv = desktopCommand(msg, "darwin");
    expect(argv.slice(0, 2)).toEqual(["osascript", "-e"]);
    expect(argv).toHaveLength(3);
    const m = /^display notification ("(?:[^"\\]|\\.)*") with title ("(?:[^"\\]|\\.)*")$/s.exec(argv[2]);
    expect(m).not.toBeNull();
    expect(argv[2]).not.toContain("\n");
    const { title, body } = desktopText(msg);
    expect(readAppleScript(m![1])).toBe(body);
    expect(readAppleScript(m![2])).toBe(title);
    expect(title).toBe(`✅ ${TRICKY} completed in 42 s`);
    expect(appleScriptString('a"b\\c\nd')).toBe('"a\\"b\\\\c\\nd"');
  });

  it("runs a PowerShell toast on Windows with the texts as single-quoted strings, every kind of single quote doubled", () => {
    const msg = message({ jobName: TRICKY, response: "it's done ‘ok’\nsecond line" });
    const argv = desktopCommand(msg, "win32");
    expect(argv.slice(0, 4)).toEqual(["powershell", "-NoProfile", "-NonInteractive", "-Command"]);
    expect(argv).toHaveLength(5);
    const script = argv[4];
    expect(script).toContain("[Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime]");
    expect(script).toContain("ToastTemplateType]::ToastText02");
    const { title, body } = desktopText(msg);
    const strings = readPowerShellStrings(script);
    expect(strings).toEqual(["Stop", "text", title, body, POWERSHELL_APP_ID]);
    expect(powerShellString("it's ‘x’")).toBe("'it''s ‘‘x’’'");
  });

  it("keeps the body short, whole graphemes, with the pointer when cut", () => {
    const { body } = desktopText(message({ response: longAnswer(10_000), link: CRON_LINK, durationMs: null, costUsd: null, nextRunAt: null }));
    expect(body.length).toBeLessThanOrEqual(DESKTOP_BODY_MAX);
    expect(body.endsWith(truncationNote(CRON_LINK))).toBe(true);
    expect(wellFormed(body)).toBe(true);
    // plain text: the Markdown's markup is gone
    expect(body).not.toContain("**");
    expect(body).not.toContain("```");
  });

  it("says (no output) for an empty answer and the default sentence for a test", () => {
    expect(
      desktopText(message({ event: "failed", status: "failed", error: "Boom.", response: "", durationMs: null, costUsd: null, nextRunAt: null })).body,
    ).toBe("(no output)");
    const t = desktopText(message({ test: true, response: "", durationMs: null, costUsd: null, nextRunAt: null }));
    expect(t.title).toBe("🧪 Test message from agent-cron");
    expect(t.body).toBe("This is a test message from agent-cron test-channel. If you can read it, the channel works.");
  });
});
