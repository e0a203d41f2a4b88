import { defineConfig } from "vitest/config";

/** `npm run test:all`'s own part: tests that need what scripts/test-all.sh installs. */
export default defineConfig({
  test: {
    include: ["test/contract/**/*.test.ts", "test/all/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Children that inherit the test's environment start no background owner (always_on); a
    // test about it says AGENT_CRON_ALWAYS_ON: "daemon" and stops what it started.
    env: { AGENT_CRON_ALWAYS_ON: "client" },
    maxWorkers: 2,
  },
});
