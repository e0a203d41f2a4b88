import { ResourceTemplate, type McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CronApi } from "../core/api.js";

const JSON_MIME = "application/json";
const LISTED_RUNS = 50;

/** Job and run resources: the job list, a job's page, and each run's whole record. */
export function registerResources(server: McpServer, api: CronApi): void {
  const json = (uri: URL, value: unknown) => ({
    contents: [{ uri: uri.href, mimeType: JSON_MIME, text: JSON.stringify(value, null, 2) }],
  });

  server.registerResource(
    "jobs",
    "cron://jobs",
    { title: "All scheduled jobs", description: "Every job with its state and next run", mimeType: JSON_MIME },
    async (uri) => json(uri, { jobs: await api.allJobs({}) }),
  );

  server.registerResource(
    "job",
    new ResourceTemplate("cron://jobs/{job_id}", {
      list: async () => ({
        resources: (await api.allJobs({})).map((job) => ({
          uri: `cron://jobs/${job.id}`,
          name: job.name ?? job.id,
          description: `${job.state} job: ${job.schedule}`,
          mimeType: JSON_MIME,
        })),
      }),
      complete: { job_id: (prefix) => api.completeIds({ kind: "job", prefix }) },
    }),
    { title: "A job", description: "The job, its next runs and its last 10 runs", mimeType: JSON_MIME },
    async (uri, { job_id }) => json(uri, await api.getCron({ job: String(job_id) })),
  );

  server.registerResource(
    "run",
    new ResourceTemplate("cron://runs/{run_id}", {
      list: async () => ({
        resources: (await api.listRuns({ limit: LISTED_RUNS })).runs.map((run) => ({
          uri: `cron://runs/${run.id}`,
          name: `run ${run.id}`,
          description: `${run.status} run of job ${run.job_id}, ${run.scheduled_for ?? run.started_at}`,
          mimeType: JSON_MIME,
        })),
      }),
      complete: { run_id: (prefix) => api.completeIds({ kind: "run", prefix }) },
    }),
    { title: "A run", description: "The whole run record with its whole output", mimeType: JSON_MIME },
    async (uri, { run_id }) => json(uri, await api.readRun({ run: String(run_id) })),
  );
}
