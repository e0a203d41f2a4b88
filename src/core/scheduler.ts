/**
 * The fleet timer: one timer for every job, over a min-heap of each job's next occurrence.
 * It only decides *when*; what an occurrence does is the dispatcher's business.
 */

export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Timers run on a monotonic clock while occurrences are wall-clock times, so a long sleep
 * would miss a clock change (NTP step, manual change, suspend). Waking at least this often
 * bounds how late a jump can make us.
 */
const MAX_SLEEP_MS = 30_000;

interface Entry {
  at: number;
  jobId: string;
  seq: number;
}

export type DueHandler = (jobId: string, at: number) => void;

export class FleetScheduler {
  private heap: Entry[] = [];
  /** The live entry of each job; heap entries with another seq are stale and skipped. */
  private readonly current = new Map<string, Entry>();
  private seq = 0;
  private timer: unknown = null;
  private armedFor = Infinity;
  private running = false;

  constructor(
    private readonly onDue: DueHandler,
    private readonly clock: Clock = systemClock,
  ) {}

  get size(): number {
    return this.current.size;
  }

  nextFor(jobId: string): number | null {
    return this.current.get(jobId)?.at ?? null;
  }

  /** Sets (or with null, clears) a job's next occurrence. */
  set(jobId: string, at: number | null): void {
    if (at === null) {
      this.current.delete(jobId);
    } else {
      const entry = { at, jobId, seq: ++this.seq };
      this.current.set(jobId, entry);
      this.push(entry);
    }
    // Lazy deletion keeps updates O(log n); rebuild when stale entries dominate.
    if (this.heap.length > 64 && this.heap.length > 2 * this.current.size) this.rebuild();
    if (this.running && (at === null ? false : at < this.armedFor)) this.arm();
  }

  start(): void {
    this.running = true;
    this.arm();
  }

  /** Looks at the heap again now: the wall clock jumped, and what is due fires at once. */
  poke(): void {
    if (this.running) this.arm();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
  }

  private arm(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
    if (!this.running) return;
    const top = this.peek();
    const now = this.clock.now();
    const wait = top ? Math.max(0, top.at - now) : MAX_SLEEP_MS;
    this.armedFor = top ? top.at : Infinity;
    this.timer = this.clock.setTimer(() => this.fire(), Math.min(wait, MAX_SLEEP_MS));
  }

  private fire(): void {
    this.timer = null;
    const now = this.clock.now();
    for (let top = this.peek(); top && top.at <= now; top = this.peek()) {
      this.pop();
      this.current.delete(top.jobId);
      try {
        this.onDue(top.jobId, top.at);
      } catch (err) {
        // A bug in one job's handling must not stop the fleet.
        process.emitWarning(`agent-cron: occurrence of job ${top.jobId} failed to dispatch: ${String(err)}`);
      }
    }
    this.arm();
  }

  private peek(): Entry | undefined {
    while (this.heap.length && this.current.get(this.heap[0].jobId) !== this.heap[0]) this.pop();
    return this.heap[0];
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at <= e.at) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = e;
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r].at < h[l].at ? r : l;
        if (h[c].at >= last.at) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  private rebuild(): void {
    const live = [...this.current.values()];
    this.heap = [];
    for (const e of live) this.push(e);
  }
}
