/**
 * The `store` config key through the built CLI, with Node and npm alone (the postgres
 * backend's real tests need a database: test/all/postgres-*.test.ts). This suite runs on
 * Node 20 in `npm test` and again on Node 22 in `npm run test:all`, so both answers of a
 * postgres store without its prerequisites are seen.
 */
import { afterEach, describe, expect, it } from "vitest";
import { makeDataDir, removeDir, runCli } from "../helpers/server.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeDir(d);
});

function dataDir(config: Record<string, unknown>): string {
  const dir = makeDataDir({ config });
  dirs.push(dir);
  return dir;
}

const [major, minor] = process.versions.node.split(".").map(Number);
const nodeTooOld = major < 22 || (major === 22 && minor < 12);

describe("config store", () => {
  it(
    nodeTooOld
      ? `a postgres store on Node ${process.versions.node} says it needs Node 22.12 and exits 2, before any connection`
      : `a postgres store on Node ${process.versions.node} without AGENT_CRON_DATABASE_URL names the variable and exits 2`,
    async () => {
      const dir = dataDir({ store: { type: "postgres" } });
      const { code, stderr } = await runCli(["serve", "--data-dir", dir]);
      expect(code).toBe(2);
      expect(stderr.trim()).toMatch(
        nodeTooOld
          ? /^agent-cron: The postgres store needs Node\.js 22\.12 or newer \(for pg-boss 12\); this is Node\.js \d+\.\d+\.\d+\. Run agent-cron with a newer Node, or set "store": \{"type": "files"\} in the config\.$/
          : /^agent-cron: The config's store is postgres, but AGENT_CRON_DATABASE_URL is not set; set it to the database URL, e\.g\. AGENT_CRON_DATABASE_URL=postgres:\/\/.+\.$/,
      );
    },
  );

  it("refuses an unknown store type and an unknown store key, naming them", async () => {
    const bad = await runCli(["list", "--data-dir", dataDir({ store: { type: "mysql" } })]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/store\.type must be "files" or "postgres"/);
    const typo = await runCli(["list", "--data-dir", dataDir({ store: { type: "postgres", url: "postgres://x" } })]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/unknown field "url" in store/);
    const cap = await runCli(["list", "--data-dir", dataDir({ fleet_max_concurrent: 0 })]);
    expect(cap.stderr).toMatch(/fleet_max_concurrent must be at least 1, got 0/);
  });

  it('works as before with "store": {"type": "files"} given explicitly', async () => {
    const dir = dataDir({ store: { type: "files" } });
    expect((await runCli(["add", "--data-dir", dir, "--name", "x", "--schedule", "@daily", "--prompt", "p"])).code).toBe(0);
    const listed = await runCli(["list", "--data-dir", dir, "--json"]);
    expect(JSON.parse(listed.stdout).jobs.map((j: { name: string }) => j.name)).toEqual(["x"]);
  });
});
