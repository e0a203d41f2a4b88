import { mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { defaultWorkRoot, makePrivateDir, resolveWorkDir } from "../../src/core/work-dirs.js";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("default work dirs", () => {
  it("live under $XDG_CACHE_HOME, else ~/.cache, never in the data dir", () => {
    expect(defaultWorkRoot({ XDG_CACHE_HOME: "/c", HOME: "/h" })).toBe("/c/agent-cron/work");
    expect(defaultWorkRoot({ HOME: "/h" })).toBe("/h/.cache/agent-cron/work");
    // A relative XDG_CACHE_HOME is ignored, as the XDG spec says.
    expect(defaultWorkRoot({ XDG_CACHE_HOME: "rel", HOME: "/h" })).toBe("/h/.cache/agent-cron/work");
    expect(defaultWorkRoot({})).toBe(path.join(os.tmpdir(), `agent-cron-${process.getuid!()}`, "work"));
  });

  it("are private to the user (mode 700), and a link planted in their place is refused", () => {
    const base = mkdtempSync(path.join(os.tmpdir(), "agent-cron-wd-"));
    dirs.push(base);
    const dir = path.join(base, "agent-cron", "work");
    makePrivateDir(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const planted = path.join(base, "planted");
    symlinkSync(os.tmpdir(), planted);
    expect(() => makePrivateDir(planted)).toThrow(/is not a directory of this user's/);
  });

  it("refuses a work_dir that is, is inside or holds the data dir or the default work dirs, even through a link", () => {
    const base = realpathSync(mkdtempSync(path.join(os.tmpdir(), "agent-cron-wd-")));
    dirs.push(base);
    const data = path.join(base, "home", ".agent-cron");
    const project = path.join(base, "home", "project");
    for (const d of [path.join(data, "outputs"), project]) mkdirSync(d, { recursive: true });
    symlinkSync(data, path.join(project, "sneaky"));
    const roots = [path.join(base, "home")];
    const forbidden = [data];
    expect(resolveWorkDir(project, roots, forbidden)).toBe(project);
    for (const dir of [data, path.join(data, "outputs"), path.join(base, "home"), path.join(project, "sneaky")]) {
      expect(() => resolveWorkDir(dir, roots, forbidden), dir).toThrow(/is or holds agent-cron's own data/);
    }
  });
});
