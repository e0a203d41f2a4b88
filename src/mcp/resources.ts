import { ResourceTemplate, type McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { App } from "../core/app.js";
import { UserError } from "../core/errors.js";

const JSON_MIME = "application/json";
const LISTED_RUNS = 50;
const MAX_COMPLETIONS = 100;

/** Job and run resources: a job's page, each run's whole record, and the job list. */
export function registerResources(server: McpServer, app: App): void {
  const json = (uri: URL, value: unknown) => ({
    contents: [{ uri: uri.href, mimeType: JSON_MIME, text: JSON.stringify(value, null, 2) }],
  });
  const completeFrom = (values: Iterable<string>, prefix: string) => {
    const out: string[] = [];
    for (const v of values) {
      if (v.startsWith(prefix)) out.push(v);
      if (out.length === MAX_COMPLETIONS) break;
    }
    return out;
  };

  server.registerResource(
    "jobs",
    "cron://jobs",
    { title: "All scheduled jobs", description: "Every job with its state and next run", mimeType: JSON_MIME },
    async (uri) => json(uri, { jobs: [...app.jobs.all()] }),
  );

  server.registerResource(
    "job",
    new ResourceTemplate("cron://jobs/{job_id}", {
      list: async () => ({
        resources: [...app.jobs.all()].map((job) => ({
          uri: `cron://jobs/${job.id}`,
          name: job.name ?? job.id,
          description: `${job.state} job: ${job.schedule}`,
          mimeType: JSON_MIME,
        })),
      }),
      complete: { job_id: (value) => completeFrom((function* () { for (const j of app.jobs.all()) yield j.id; })(), value) },
    }),
    { title: "A job", description: "The job, its next runs and its last 10 runs", mimeType: JSON_MIME },
    async (uri, { job_id }) => {
      const job = app.jobs.get(String(job_id));
      if (!job) throw new UserError(`No job with id "${job_id}".`);
      const next = app.nextRuns(job, 5);
      return json(uri, {
        job,
        description: app.describe(job),
        next_runs: next.map((d) => app.formatTime(d, job.timezone)),
        next_runs_utc: next.map((d) => d.toISOString()),
        recent_runs: app.recentRuns(job.id, 10),
      });
    },
  );

  server.registerResource(
    "run",
    new ResourceTemplate("cron://runs/{run_id}", {
      list: async () => ({
        resources: app.listRuns({ limit: LISTED_RUNS }).items.map((run) => ({
          uri: `cron://runs/${run.id}`,
          name: `run ${run.id}`,
          description: `${run.status} run of job ${run.job_id}, ${run.scheduled_for ?? run.started_at}`,
          mimeType: JSON_MIME,
        })),
      }),
      complete: { run_id: (value) => completeFrom(app.listRuns({ limit: 100 }).items.map((r) => r.id), value) },
    }),
    { title: "A run", description: "The whole run record with its whole output", mimeType: JSON_MIME },
    async (uri, { run_id }) => json(uri, await app.getRun(String(run_id))),
  );
}
