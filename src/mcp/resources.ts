import { ResourceTemplate, type McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CronApi } from "../core/api.js";
import { registerAppView } from "./app-view/resource.js";

const JSON_MIME = "application/json";
const LISTED_RUNS = 50;

/** Job and run resources: the job list, a job's page, and each run's whole record; and the jobs view (MCP App). */
export function registerResources(server: McpServer, api: CronApi): void {
  registerAppView(server);
  const json = (uri: URL, value: unknown) => ({
    contents: [{ uri: uri.href, mimeType: JSON_MIME, text: JSON.stringify(value, null, 2) }],
  });

  // Pages, so that 100,000 jobs are not one 160 MB answer: each names the URI of the next.
  const jobsPage = async (uri: URL, cursor?: string) => {
    const page = await api.jobsPage({ cursor });
    return json(uri, { ...page, next_uri: page.next_cursor ? `cron://jobs?cursor=${page.next_cursor}` : null });
  };
  const jobsMeta = {
    title: "All scheduled jobs",
    description: "Every job's whole record, a page at a time (up to 100 jobs or 256 KiB); next_uri reads the next page",
    mimeType: JSON_MIME,
  };
  server.registerResource("jobs", "cron://jobs", jobsMeta, async (uri) => jobsPage(uri));
  server.registerResource("jobs-page", new ResourceTemplate("cron://jobs{?cursor}", { list: undefined }), jobsMeta, async (uri, { cursor }) =>
    jobsPage(uri, typeof cursor === "string" ? cursor : undefined),
  );

  server.registerResource(
    "job",
    new ResourceTemplate("cron://jobs/{job_id}", {
      // The first page only: the listing stays small however many jobs there are.
      list: async () => ({
        resources: (await api.jobsPage({})).jobs.map((job) => ({
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
