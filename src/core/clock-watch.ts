import { readFileSync } from "node:fs";
import { monotonicMs } from "../kernel/time.js";

/**
 * Sleep, wake and clock steps (SPEC §17). Timers run on the monotonic clock while occurrences
 * are wall-clock times; the owner samples three clocks every second and compares them:
 * - the process stood still (SIGSTOP, a frozen VM): monotonic time ran on between two samples
 *   a second apart, and so did the wall clock: `host asleep`;
 * - the host was suspended: boot time (which counts the suspend) ran on and monotonic time
 *   (which does not) did not: `host asleep`;
 * - only the wall clock moved (an NTP step, a person setting the time): `clock changed`.
 * What such a gap made late goes through each job's catch_up, and what is not run is recorded
 * `missed` with that reason.
 */

export interface ClockSample {
  /** Wall clock, ms since the epoch. */
  wall: number;
  /** Monotonic, ms; stops while the host is suspended. */
  mono: number;
  /** Since boot including suspend, ms (Linux /proc/uptime); the monotonic time elsewhere. */
  boot: number;
}

export type JumpReason = "host asleep" | "clock changed";

export interface ClockJump {
  reason: JumpReason;
  /** The wall clock before and after the gap: occurrences between them fell into it. */
  from: number;
  to: number;
}

/** A wall clock that moves this much more (or less) than the monotonic one is a step or a suspend. */
export const JUMP_MS = 60_000;
/** A process that did not run for this long (beyond the sampling interval) was asleep. */
export const STALL_MS = 5_000;
export const SAMPLE_EVERY_MS = 1_000;

export function sampleClocks(): ClockSample {
  const mono = monotonicMs();
  let boot = mono;
  try {
    boot = Number.parseFloat(readFileSync("/proc/uptime", "utf8")) * 1000;
  } catch {
    // Not Linux: a suspend then looks like a clock step.
  }
  return { wall: Date.now(), mono, boot };
}

export class ClockWatch {
  private last: ClockSample;
  /** The newest gap, kept so that an occurrence that fell into it gets its reason. */
  private gap: ClockJump | null = null;

  constructor(private readonly sample: () => ClockSample = sampleClocks) {
    this.last = sample();
  }

  /** Compares the clocks with the last sample; a gap found now is returned (and remembered). */
  check(): ClockJump | null {
    const now = this.sample();
    const prev = this.last;
    this.last = now;
    const wall = now.wall - prev.wall;
    const mono = now.mono - prev.mono;
    const boot = now.boot - prev.boot;
    let reason: JumpReason | null = null;
    if (mono - SAMPLE_EVERY_MS >= STALL_MS || boot - mono >= JUMP_MS) reason = "host asleep";
    else if (Math.abs(wall - mono) >= JUMP_MS) reason = "clock changed";
    if (!reason) return null;
    this.gap = { reason, from: prev.wall, to: now.wall };
    return this.gap;
  }

  /** Why an occurrence at `at` was not run on time, when it fell into the newest gap. */
  reasonFor(at: number): JumpReason | null {
    const g = this.gap;
    return g && at >= Math.min(g.from, g.to) && at <= Math.max(g.from, g.to) ? g.reason : null;
  }
}
