import { defineConfig } from "vitest/config";

/** `npm run test:all`'s own part: tests that need what scripts/test-all.sh installs. */
export default defineConfig({
  test: {
    include: ["test/contract/**/*.test.ts", "test/all/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
