import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { LockLostError, UserError, unfenced, type Fence } from "../core/errors.js";
import { RunSchema, type Run } from "../core/jobs.js";
import { parseNamed, recordsFile } from "./json-file.js";
import { writeError } from "./jobs-store.js";

type RunsFile = ReturnType<typeof recordsFile>;

/**
 * Run history: one lowdb file per job (`runs/<job_id>.json`), capped at `runs_per_job`, so
 * recording a run costs the same however many jobs and runs exist. Whole outputs live in
 * `outputs/<run_id>`; records carry only the first 4 KiB.
 */
export class RunStore {
  /** Each job's runs, oldest first. */
  private readonly byJob = new Map<string, Run[]>();
  private readonly byId = new Map<string, Run>();
  private readonly files = new Map<string, RunsFile>();
  private readonly runsDir: string;
  readonly outputsDir: string;
  /** Default work dirs (`<workRoot>/<run_id>`, a persistent job's `<workRoot>/<job_id>`): removed with their run or job. */
  readonly workRoot: string;
  /** Where default work dirs were kept before they moved out of the data dir. */
  private readonly legacyWorkRoot: string;
  private readonly fence: Fence;

  constructor(
    dataDir: string,
    private readonly runsPerJob: number,
    opts: { fence?: Fence; workRoot?: string } = {},
  ) {
    this.runsDir = path.join(dataDir, "runs");
    this.outputsDir = path.join(dataDir, "outputs");
    this.legacyWorkRoot = path.join(dataDir, "work");
    this.workRoot = opts.workRoot ?? this.legacyWorkRoot;
    this.fence = opts.fence ?? unfenced;
    mkdirSync(this.runsDir, { recursive: true });
    mkdirSync(this.outputsDir, { recursive: true });
  }

  /** Reads every history file; a file that does not parse stops start-up, untouched. */
  load(): void {
    for (const name of readdirSync(this.runsDir)) {
      if (!name.endsWith(".json") || name.startsWith(".")) continue;
      const file = path.join(this.runsDir, name);
      const data = parseNamed(file, readFileSync(file, "utf8"));
      if (!Array.isArray(data.runs)) throw new UserError(`Data file ${file} has no "runs" array. It was left untouched; move it aside to start afresh.`);
      const runs = data.runs.map((raw, i) => {
        const parsed = RunSchema.safeParse(raw);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw new UserError(`Data file ${file} (run #${i + 1}) holds an invalid run (${issue.path.join(".")}: ${issue.message}). It was left untouched; fix or remove that run.`);
        }
        return parsed.data;
      });
      const jobId = name.slice(0, -".json".length);
      this.byJob.set(jobId, runs);
      for (const run of runs) this.byId.set(run.id, run);
    }
  }

  get(id: string): Run | undefined {
    return this.byId.get(id);
  }

  /** A job's runs, oldest first. */
  ofJob(jobId: string): readonly Run[] {
    return this.byJob.get(jobId) ?? [];
  }

  jobIds(): IterableIterator<string> {
    return this.byJob.keys();
  }

  *all(): IterableIterator<Run> {
    for (const runs of this.byJob.values()) yield* runs;
  }

  /** Adds or replaces a run and writes its job's history; resolves once it is on disk. */
  async put(run: Run): Promise<void> {
    let runs = this.byJob.get(run.job_id);
    if (!runs) this.byJob.set(run.job_id, (runs = []));
    const known = this.byId.get(run.id);
    if (known) runs[runs.indexOf(known)] = run;
    else runs.push(run);
    this.byId.set(run.id, run);
    const dropped = runs.length > this.runsPerJob ? this.evictOldest(runs) : [];
    try {
      this.fence();
      await this.file(run.job_id).write({ runs });
    } catch (err) {
      // Keep memory equal to the file: undo this change (evicted runs are still on disk).
      const i = runs.indexOf(run);
      if (i >= 0) {
        if (known) runs[i] = known;
        else runs.splice(i, 1);
      }
      if (known) this.byId.set(run.id, known);
      else this.byId.delete(run.id);
      runs.unshift(...dropped);
      for (const r of dropped) this.byId.set(r.id, r);
      if (err instanceof LockLostError) throw err;
      throw writeError(path.join(this.runsDir, `${run.job_id}.json`), err);
    }
    await Promise.all(dropped.map((r) => this.removeFilesOf(r)));
  }

  /** Keeps the newest `runs_per_job`, never evicting a run still going. */
  private evictOldest(runs: Run[]): Run[] {
    const dropped: Run[] = [];
    for (let i = 0; i < runs.length && runs.length - dropped.length > this.runsPerJob; i++) {
      if (runs[i].status !== "running") dropped.push(runs[i]);
    }
    const gone = new Set(dropped);
    const kept = runs.filter((r) => !gone.has(r));
    runs.length = 0;
    runs.push(...kept);
    for (const r of dropped) this.byId.delete(r.id);
    return dropped;
  }

  async removeJob(jobId: string): Promise<void> {
    this.fence();
    const runs = this.byJob.get(jobId) ?? [];
    this.byJob.delete(jobId);
    this.files.delete(jobId);
    for (const r of runs) this.byId.delete(r.id);
    await rm(path.join(this.runsDir, `${jobId}.json`), { force: true });
    await Promise.all(runs.map((r) => this.removeFilesOf(r)));
    for (const root of this.workRoots()) await rm(path.join(root, jobId), { recursive: true, force: true });
  }

  async writeOutput(runId: string, output: string, raw?: string): Promise<void> {
    this.fence();
    await writeFile(path.join(this.outputsDir, runId), output);
    if (raw !== undefined && raw !== output) await writeFile(path.join(this.outputsDir, `${runId}.raw`), raw);
  }

  async readOutput(runId: string): Promise<string | null> {
    try {
      return await readFile(path.join(this.outputsDir, runId), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** A run's output files, and its work dir when it is the default one made for it alone. */
  private async removeFilesOf(run: Run): Promise<void> {
    await rm(path.join(this.outputsDir, run.id), { force: true });
    await rm(path.join(this.outputsDir, `${run.id}.raw`), { force: true });
    for (const root of this.workRoots()) {
      const own = path.join(root, run.id);
      if (run.work_dir === own) await rm(own, { recursive: true, force: true });
    }
  }

  private workRoots(): string[] {
    return this.workRoot === this.legacyWorkRoot ? [this.workRoot] : [this.workRoot, this.legacyWorkRoot];
  }

  private file(jobId: string): RunsFile {
    let f = this.files.get(jobId);
    if (!f) this.files.set(jobId, (f = recordsFile(path.join(this.runsDir, `${jobId}.json`), "runs")));
    return f;
  }
}
