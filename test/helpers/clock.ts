import type { Clock } from "../../src/core/scheduler.js";

/** A clock whose time moves only when a test says so; timers fire in time order. */
export class FakeClock implements Clock {
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;
  /** Monotonic time, which timers follow; the wall clock may jump apart from it. */
  private mono = 0;
  private offset: number;

  constructor(start: number | string) {
    this.offset = typeof start === "string" ? Date.parse(start) : start;
  }

  now(): number {
    return this.mono + this.offset;
  }

  setTimer(fn: () => void, ms: number): number {
    const id = this.nextId++;
    this.timers.set(id, { at: this.mono + Math.max(0, ms), fn });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Lets monotonic time pass, firing due timers one by one. */
  advance(ms: number): void {
    const end = this.mono + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const t of this.timers) if (t[1].at <= end && (!next || t[1].at < next[1].at)) next = t;
      if (!next) break;
      this.timers.delete(next[0]);
      this.mono = Math.max(this.mono, next[1].at);
      next[1].fn();
    }
    this.mono = end;
  }

  /** Sets the wall clock (an NTP step or a user changing the time); timers are unaffected. */
  jumpWall(ms: number): void {
    this.offset += ms;
  }

  get pendingTimers(): number {
    return this.timers.size;
  }
}
