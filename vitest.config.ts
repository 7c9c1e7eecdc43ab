import { defineConfig } from "vitest/config"

// Test files that need a broker scripts/broker.sh started and controls: they restart, freeze, cut it
// or raise its alarms, use its TLS test CA, the cluster or the mTLS node (which it starts as root).
// With a broker it did not start (scripts/test.sh sets TEST_UNMANAGED_BROKER), they are not run,
// and this says so; CI runs them all.
export const needsManagedBroker = [
  "test/integration/chaos.test.ts",
  "test/integration/cluster.test.ts",
  "test/integration/faults.test.ts",
  "test/integration/prefetch.test.ts",
  "test/integration/producer.test.ts",
  "test/integration/restart.test.ts",
  "test/integration/stalls.test.ts",
  "test/integration/telemetry-faults.test.ts",
  "test/integration/tls.test.ts",
  // (It checks how npm test treats a broker the script did not start, and runs broker.sh as nobody.)
  "test/integration/unmanaged.test.ts"
]

const unmanaged = process.env.TEST_UNMANAGED_BROKER === "1"
if (unmanaged) {
  console.error(
    `NOT RUN: ${needsManagedBroker.length} test files need a broker scripts/broker.sh started (run npm test as root, ` +
      `or with a Docker engine, to run them): ${needsManagedBroker.map((file) => file.replace(/^.*\//, "")).join(", ")}`
  )
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: unmanaged ? ["**/node_modules/**", ...needsManagedBroker] : ["**/node_modules/**"],
    // Integration tests share one broker: run files one after another to keep timings honest.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
