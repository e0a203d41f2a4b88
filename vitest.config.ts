import { defineConfig } from "vitest/config";

/**
 * `npm test`: everything that needs only Node and `npm install`. The tests that need more
 * (real agent CLIs, Node 22 tools) live in test/contract/ and test/all/ and run from
 * `npm run test:all` (vitest.all.config.ts), whose script installs what they need.
 */
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/contract/**", "test/all/**", "**/node_modules/**"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Children that inherit the test's environment start no background owner (always_on); a
    // test about it says AGENT_CRON_ALWAYS_ON: "daemon" and stops what it started.
    env: { AGENT_CRON_ALWAYS_ON: "client" },
    maxWorkers: 3,
  },
});
