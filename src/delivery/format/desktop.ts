/**
 * Desktop notifications: the argv of the platform's own notifier, run without a shell.
 *
 *   Linux and others: notify-send [--urgency=critical] --app-name=agent-cron -- <title> <body>
 *   macOS:            osascript -e 'display notification "<body>" with title "<title>"'
 *   Windows:          powershell -NoProfile -NonInteractive -Command <toast script>
 *
 * The body is the answer as plain text, cut short (a notification shows a few lines), with
 * the footer's facts on its last line. notify-send's body is markup for most notification
 * servers, so `&`, `<` and `>` are escaped there; the title (summary) is never markup.
 * AppleScript strings escape `\` and `"`, and spell line breaks `\n`. The Windows toast uses
 * the built-in Windows.UI.Notifications API (no module to install) under PowerShell's own
 * app id, with the texts in single-quoted PowerShell strings, where the only special
 * character is the single quote (and its typographic forms ‘ ’ ‚ ‛), doubled.
 */
import { UTF16, fitAtoms, messageBody, render } from "./markdown.js";
import { desktopNotifier } from "./notifier.js";
import { type DeliveryMessage, FOOTER_SEPARATOR, footerParts, shorten, title } from "./message.js";
import { plainRenderer } from "./plain.js";

export const DESKTOP_BODY_MAX = 300;
export const DESKTOP_TITLE_MAX = 120;

/** The registered app id of Windows PowerShell, under which a toast is shown without setup. */
export const POWERSHELL_APP_ID = "{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\\WindowsPowerShell\\v1.0\\powershell.exe";

/** The notification's title and plain-text body, before any platform's escaping. */
export function desktopText(msg: DeliveryMessage): { title: string; body: string } {
  const body = messageBody(msg, plainRenderer);
  const cut = render(fitAtoms(body.atoms, DESKTOP_BODY_MAX, UTF16, msg.link, (s) => s, body.sourceCut).atoms);
  const facts = footerParts(msg).join(FOOTER_SEPARATOR);
  return { title: shorten(title(msg), DESKTOP_TITLE_MAX), body: facts ? `${cut}\n${facts}` : cut };
}

/** Escapes a text for a notify-send body (Desktop Notifications body markup). */
export const escapeNotifyMarkup = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A double-quoted AppleScript string literal. */
export function appleScriptString(s: string): string {
  return `"${s
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\r\n|\r|\n/g, "\\n")
    .replace(/\t/g, "\\t")}"`;
}

/** A single-quoted PowerShell string literal. */
export function powerShellString(s: string): string {
  return `'${s.replace(/['\u2018\u2019\u201A\u201B]/g, (q) => q + q)}'`;
}

/** The program and its arguments that show `msg` on this platform's desktop. */
export function desktopCommand(msg: DeliveryMessage, platform: NodeJS.Platform = process.platform): string[] {
  const { title: heading, body } = desktopText(msg);
  const program = desktopNotifier(platform);
  if (program === "osascript") {
    return [program, "-e", `display notification ${appleScriptString(body)} with title ${appleScriptString(heading)}`];
  }
  if (program === "powershell") {
    const script = [
      "$ErrorActionPreference = 'Stop'",
      "[void][Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime]",
      "$xml = [Windows.UI.Notifications.ToastNotificationManager]::GetTemplateContent([Windows.UI.Notifications.ToastTemplateType]::ToastText02)",
      "$texts = $xml.GetElementsByTagName('text')",
      `[void]$texts.Item(0).AppendChild($xml.CreateTextNode(${powerShellString(heading)}))`,
      `[void]$texts.Item(1).AppendChild($xml.CreateTextNode(${powerShellString(body)}))`,
      `[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier(${powerShellString(POWERSHELL_APP_ID)}).Show([Windows.UI.Notifications.ToastNotification]::new($xml))`,
    ].join("; ");
    return [program, "-NoProfile", "-NonInteractive", "-Command", script];
  }
  const urgent = !msg.test && msg.event === "failed";
  return [program, ...(urgent ? ["--urgency=critical"] : []), "--app-name=agent-cron", "--", heading, escapeNotifyMarkup(body)];
}
