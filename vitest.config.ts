import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests share one broker: run files one after another to keep timings honest.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
