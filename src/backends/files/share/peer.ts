import { execFile } from "node:child_process";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import type net from "node:net";
import os from "node:os";
import { liveProcessGroups } from "../../../executors/process.js";

/**
 * Whether a process acts for a person (SPEC §20): approving a job, and adding or changing one
 * as "the CLI" (no approval needed), are a person's acts. A run, and anything it starts, is
 * the adversary approval was built against, so the owner checks who is at the other end of
 * its socket by the kernel's word, not by anything the caller says:
 * - the peer's pid comes from the kernel (sock_diag, through `ss` from iproute2: Node has
 *   no SO_PEERCRED), never from the message;
 * - it must run as this user, in this process's user, pid and mount namespaces (a sandboxed
 *   run is in others);
 * - neither it nor any ancestor may be in a live run's process group or session, be started
 *   by this owner, or carry a run's AGENT_CRON_RUN_ID / AGENT_CRON_JOB_ID in its environment.
 * Linux only; elsewhere nothing is checked (SECURITY.md says so).
 */
export type PersonCheck = { person: true; who: string } | { person: false; why: string };

/** Variables every run's processes get (SPEC §2), and that a person's shell does not have. */
const RUN_MARKERS = ["AGENT_CRON_RUN_ID=", "AGENT_CRON_JOB_ID="];
const NAMESPACES = ["user", "pid", "mnt"] as const;
const MAX_ANCESTORS = 128;

export const PEER_CHECKED = process.platform === "linux";

/** The other end of an accepted unix-socket connection, checked; cached by the caller per connection. */
export async function checkSocketPeer(socket: net.Socket): Promise<PersonCheck> {
  if (!PEER_CHECKED) return { person: true, who: `${os.userInfo().username} (the peer is not checked on ${process.platform})` };
  const pids = await socketPeerPids(socket);
  if (pids === null || pids.length === 0) {
    return {
      person: false,
      why: "agent-cron cannot tell which process is asking (it reads a socket's peer with `ss` from iproute2; install it), so it cannot tell a person from a run",
    };
  }
  let who = "";
  // A socket handed to several processes is as trusted as the least of them.
  for (const pid of pids) {
    const check = checkProcess(pid);
    if (!check.person) return check;
    who ||= check.who;
  }
  return { person: true, who };
}

/** This process itself: the CLI or dashboard that owns the data dir, or serves a shared store. */
export function checkSelf(): PersonCheck {
  if (!PEER_CHECKED) return { person: true, who: `${os.userInfo().username} (not checked on ${process.platform})` };
  return checkProcess(process.pid);
}

/** `pid` as a person's process (see the module comment), or why not. */
export function checkProcess(pid: number, runGroups: ReadonlySet<number> = liveProcessGroups()): PersonCheck {
  const status = readProc(pid, "status");
  if (status === null) return { person: false, why: `process ${pid} cannot be inspected` };
  const uid = Number(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)?.[2] ?? NaN);
  const myUid = process.geteuid?.() ?? -1;
  if (uid !== myUid) return { person: false, why: `process ${pid} runs as user ${uid}, not as the owner's user ${myUid}` };
  for (const ns of NAMESPACES) {
    const theirs = readLink(`/proc/${pid}/ns/${ns}`);
    if (theirs === null || theirs !== readLink(`/proc/self/ns/${ns}`)) {
      return { person: false, why: `process ${pid} is in another ${ns} namespace than agent-cron (a sandbox)` };
    }
  }
  let cur = pid;
  for (let depth = 0; depth < MAX_ANCESTORS && cur > 1; depth++) {
    const stat = parseStat(readProc(cur, "stat"));
    if (!stat) break;
    const self = cur === pid ? `process ${pid}` : `process ${pid}'s ancestor ${cur} (${stat.comm})`;
    if (runGroups.has(cur) || runGroups.has(stat.pgrp) || runGroups.has(stat.session)) return { person: false, why: `${self} belongs to a run` };
    if (cur !== pid && cur === process.pid) return { person: false, why: `${self} is agent-cron's owner: ${pid} was started by a run` };
    const environ = readProc(cur, "environ");
    if (environ?.split("\0").some((v) => RUN_MARKERS.some((m) => v.startsWith(m)))) {
      return { person: false, why: `${self} has a run's AGENT_CRON_RUN_ID in its environment` };
    }
    cur = stat.ppid;
  }
  const comm = parseStat(readProc(pid, "stat"))?.comm ?? "?";
  return { person: true, who: `${os.userInfo().username} (uid ${myUid}), pid ${pid} (${comm})` };
}

function readProc(pid: number, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "latin1");
  } catch {
    return null;
  }
}

function readLink(p: string): string | null {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
}

function parseStat(stat: string | null): { comm: string; ppid: number; pgrp: number; session: number } | null {
  if (!stat) return null;
  const close = stat.lastIndexOf(")");
  const comm = stat.slice(stat.indexOf("(") + 1, close);
  // After "(comm)": state, ppid, pgrp, session.
  const [, ppid, pgrp, session] = stat.slice(close + 2).split(" ");
  return { comm, ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session) };
}

const SS_PATHS = ["/usr/bin/ss", "/usr/sbin/ss", "/bin/ss", "/sbin/ss"];

/**
 * The pids holding the other end of `socket`, from the kernel's socket table (`ss -xp`: the
 * peer inode of our end, and the processes that hold that inode); null when it cannot tell.
 */
export async function socketPeerPids(socket: net.Socket): Promise<number[] | null> {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return null;
  const ours = /^socket:\[(\d+)\]$/.exec(readLink(`/proc/self/fd/${fd}`) ?? "")?.[1];
  const ss = SS_PATHS.find((p) => existsSync(p));
  if (!ours || !ss) return null;
  const table = await new Promise<string | null>((resolve) => {
    execFile(ss, ["-xpnH"], { env: { LANG: "C", PATH: "/usr/bin:/bin" }, timeout: 10_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) =>
      resolve(err ? null : stdout),
    );
  });
  if (table === null) return null;
  const mine = `pid=${process.pid},fd=${fd})`;
  const pids = new Set<number>();
  for (const line of table.split("\n")) {
    if (!line.startsWith("u_str")) continue;
    // Our end lists our inode first; the peer's end lists it as its peer. Paths may hold
    // spaces, so the inode is found as a whole word, not by column.
    if (!line.split(/\s+/).includes(ours) || line.includes(mine)) continue;
    for (const m of line.matchAll(/pid=(\d+)/g)) pids.add(Number(m[1]));
  }
  return [...pids];
}
