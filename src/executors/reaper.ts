/**
 * No run outlives the server, even a server killed with kill -9 (SPEC §20). A server that
 * exits kills its runs' process groups (process.ts's exit hook), and a sandboxed run dies with
 * bwrap's parent (--die-with-parent); but kill -9 runs no hook, and an unsandboxed run's
 * group would go on. Node cannot set PR_SET_PDEATHSIG on a child, so a small watcher does it:
 * one `sh` per server, started with the first run, in its own process group, reading the
 * server's list of live runs on a pipe. When the pipe closes (the server is gone, however it
 * ended) it kills the groups still listed and every process that carries one of their run ids
 * (what left its group with setsid), then exits. POSIX only; a no-op elsewhere.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { flushNow, writeTogether } from "../kernel/together.js";

/** awk keeps the live list; at the end the shell kills what is left. Run ids are UUIDs, group ids numbers. */
const SCRIPT = `awk '$1=="+"{g[$2]=$3} $1=="-"{delete g[$2]} END{for(k in g){print "g",k; if(g[k]!="")print "r",g[k]}}' |
while read -r kind id; do
  case "$kind$id" in *[!a-zA-Z0-9-]*) continue;; esac
  if [ "$kind" = g ]; then kill -KILL -- "-$id" 2>/dev/null
  else
    grep -lzsx -- "AGENT_CRON_RUN_ID=$id" /proc/[0-9]*/environ 2>/dev/null | while read -r f; do p=\${f#/proc/}; kill -KILL "\${p%/environ}" 2>/dev/null; done
  fi
done`;

let reaper: ChildProcess | null = null;
let broken = false;

function send(line: string, urgent: boolean): void {
  if (broken || process.platform === "win32") return;
  if (!reaper) {
    try {
      reaper = spawn("/bin/sh", ["-c", SCRIPT], {
        cwd: "/",
        detached: true,
        stdio: ["pipe", "ignore", "ignore"],
        env: { PATH: "/usr/bin:/bin:/usr/sbin:/sbin" },
      });
    } catch {
      broken = true;
      return;
    }
    reaper.on("error", () => {
      broken = true;
      reaper = null;
    });
    reaper.stdin!.on("error", () => {});
    // Neither keeps the server alive: it exits when its work is done, and the pipe closes then.
    reaper.unref();
    (reaper.stdin as unknown as { unref?: () => void }).unref?.();
  }
  writeTogether(reaper.stdin!, line + "\n", "tick");
  // A group to kill goes out at once (with the ends held so far): a server killed a moment
  // later must not leave it untracked. An ended group can wait for its turn's others.
  if (urgent) flushNow(reaper.stdin!);
}

/** A run's process group starts: killed by the reaper if the server dies first. */
export function reaperTrack(pgid: number, runId: string): void {
  send(`+ ${pgid} ${runId}`, true);
}

/** The group ended and was collected. */
export function reaperForget(pgid: number): void {
  if (reaper) send(`- ${pgid}`, false);
}
