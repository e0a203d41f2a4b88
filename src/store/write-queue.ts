/**
 * Serialises writes to one file and coalesces the ones that arrive while a write is under
 * way into the next single write. Each caller's promise settles only once its own data is
 * on disk, so a tool never acknowledges a change before it is written.
 */
export class WriteQueue<T> {
  private pending: T[] = [];
  private waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private running = false;

  constructor(private readonly flush: (items: T[]) => Promise<void>) {}

  push(item: T): Promise<void> {
    this.pending.push(item);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.running) void this.drain();
    return done;
  }

  /** Resolves when everything queued so far is written. */
  async idle(): Promise<void> {
    while (this.running || this.pending.length) await new Promise((r) => setImmediate(r));
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.pending.length) {
      const items = this.pending;
      const waiters = this.waiters;
      this.pending = [];
      this.waiters = [];
      try {
        await this.flush(items);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    this.running = false;
  }
}
