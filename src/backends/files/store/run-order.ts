import type { Run } from "../../../core/jobs.js";

/**
 * When a run happened, for ordering across jobs: its start, else its occurrence. The order
 * `list_runs` promises is newest first by this, ties by id descending.
 */
export function runTime(run: Run): number {
  return Date.parse(run.started_at ?? run.scheduled_for ?? "") || 0;
}

/** Chunks split past this many runs: inserting or removing moves at most this many pointers. */
const MAX_CHUNK = 1024;

interface Chunk {
  /** runTime of each run, kept so that a search never parses a date. */
  times: number[];
  runs: Run[];
}

/**
 * Every run in (time, id) order, oldest first, so that a page of the newest runs across all
 * jobs is read from the end instead of sorting the whole history on each call. Kept in chunks
 * of at most 1,024: a new run (usually the newest) and an evicted one (usually among the
 * oldest) each cost a binary search and a splice within one chunk, not a move of every run.
 */
export class RunOrder {
  private chunks: Chunk[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The order of `runs`, built at once (one sort). */
  static of(runs: Iterable<Run>): RunOrder {
    const keyed: { t: number; run: Run }[] = [];
    for (const run of runs) keyed.push({ t: runTime(run), run });
    keyed.sort((a, b) => a.t - b.t || (a.run.id < b.run.id ? -1 : a.run.id > b.run.id ? 1 : 0));
    const order = new RunOrder();
    for (let i = 0; i < keyed.length; i += MAX_CHUNK / 2) {
      const part = keyed.slice(i, i + MAX_CHUNK / 2);
      order.chunks.push({ times: part.map((k) => k.t), runs: part.map((k) => k.run) });
    }
    order.count = keyed.length;
    return order;
  }

  insert(run: Run): void {
    const t = runTime(run);
    const last = this.chunks[this.chunks.length - 1];
    // The common case: a run newer than every other goes at the end.
    if (!last || before(lastTime(last), lastRun(last).id, t, run.id)) {
      if (!last || last.runs.length >= MAX_CHUNK) this.chunks.push({ times: [t], runs: [run] });
      else {
        last.times.push(t);
        last.runs.push(run);
      }
      this.count++;
      return;
    }
    const c = this.chunkFor(t, run.id);
    const chunk = this.chunks[c];
    const i = lowerBound(chunk, t, run.id);
    chunk.times.splice(i, 0, t);
    chunk.runs.splice(i, 0, run);
    this.count++;
    if (chunk.runs.length > MAX_CHUNK) {
      const half = chunk.runs.length >> 1;
      this.chunks.splice(c + 1, 0, { times: chunk.times.splice(half), runs: chunk.runs.splice(half) });
    }
  }

  /** Removes `run` (the object stored, or one with its id); false when it is not here. */
  remove(run: Run): boolean {
    const at = this.locate(run);
    if (!at) return false;
    const chunk = this.chunks[at.c];
    chunk.times.splice(at.i, 1);
    chunk.runs.splice(at.i, 1);
    if (chunk.runs.length === 0) this.chunks.splice(at.c, 1);
    this.count--;
    return true;
  }

  /** A new copy of a run: swapped in place when its time is unchanged, else moved. */
  replace(old: Run, next: Run): void {
    const at = this.locate(old);
    if (at && this.chunks[at.c].times[at.i] === runTime(next)) {
      this.chunks[at.c].runs[at.i] = next;
      return;
    }
    if (at) this.remove(old);
    this.insert(next);
  }

  /** Removes every run `drop` says, in one pass. */
  removeWhere(drop: (run: Run) => boolean): void {
    const kept: Chunk[] = [];
    let count = 0;
    for (const chunk of this.chunks) {
      const times: number[] = [];
      const runs: Run[] = [];
      chunk.runs.forEach((r, i) => {
        if (drop(r)) return;
        times.push(chunk.times[i]);
        runs.push(r);
      });
      if (runs.length) kept.push({ times, runs });
      count += runs.length;
    }
    this.chunks = kept;
    this.count = count;
  }

  /**
   * Newest first: the `limit` runs that `filter` accepts, after the run `after` (exclusive)
   * or from the newest. `found` is false when `after` is not in the order.
   */
  page(limit: number, after?: Run, filter?: (run: Run) => boolean): { items: Run[]; more: boolean; found: boolean } {
    let c = this.chunks.length - 1;
    let i = c >= 0 ? this.chunks[c].runs.length - 1 : -1;
    if (after) {
      const at = this.locate(after);
      if (!at) return { items: [], more: false, found: false };
      c = at.c;
      i = at.i - 1;
    }
    const items: Run[] = [];
    for (; c >= 0; c--, i = c >= 0 ? this.chunks[c].runs.length - 1 : -1) {
      const runs = this.chunks[c].runs;
      for (; i >= 0; i--) {
        const r = runs[i];
        if (filter && !filter(r)) continue;
        if (items.length === limit) return { items, more: true, found: true };
        items.push(r);
      }
    }
    return { items, more: false, found: true };
  }

  /** Oldest first. */
  *[Symbol.iterator](): IterableIterator<Run> {
    for (const chunk of this.chunks) yield* chunk.runs;
  }

  /**
   * Where a run is: by the time its fields give now, checked by id; a run whose time fields
   * were changed in place after it was stored is found by a scan instead.
   */
  private locate(run: Run): { c: number; i: number } | null {
    const t = runTime(run);
    if (this.chunks.length) {
      const c = this.chunkFor(t, run.id);
      const chunk = this.chunks[c];
      const i = lowerBound(chunk, t, run.id);
      if (i < chunk.runs.length && chunk.runs[i].id === run.id) return { c, i };
    }
    for (let c = 0; c < this.chunks.length; c++) {
      const i = this.chunks[c].runs.findIndex((r) => r.id === run.id);
      if (i >= 0) return { c, i };
    }
    return null;
  }

  /** The first chunk whose last run is not before (t, id); the last chunk if there is none. */
  private chunkFor(t: number, id: string): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const chunk = this.chunks[mid];
      if (before(lastTime(chunk), lastRun(chunk).id, t, id)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function before(t1: number, id1: string, t2: number, id2: string): boolean {
  return t1 < t2 || (t1 === t2 && id1 < id2);
}

function lastTime(chunk: Chunk): number {
  return chunk.times[chunk.times.length - 1];
}

function lastRun(chunk: Chunk): Run {
  return chunk.runs[chunk.runs.length - 1];
}

/** The first index in `chunk` whose (time, id) is not before (t, id). */
function lowerBound(chunk: Chunk, t: number, id: string): number {
  let lo = 0;
  let hi = chunk.runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(chunk.times[mid], chunk.runs[mid].id, t, id)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
