/** The program that shows desktop notifications on each platform (desktop.ts builds its argv). */
export function desktopNotifier(platform: NodeJS.Platform = process.platform): "osascript" | "powershell" | "notify-send" {
  return platform === "darwin" ? "osascript" : platform === "win32" ? "powershell" : "notify-send";
}
