// The benchmark runs: every operation on a small size, ours and both raw loops, on Node. Its
// numbers are not checked (speed belongs in the benchmark, not in a test); that it runs is.
import { describe, expect, it } from "@effect/vitest"
import { run } from "./helpers.ts"

describe("npm run bench", () => {
  it("runs every operation at a small size (ours, the raw client, the tuned raw client) and exits 0", async () => {
    const result = await run("node", ["scripts/run.mjs", "bench/bench.ts", "--sizes", "2000", "--rounds", "1"], {}, 120_000)
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(`${result.stdout}${result.stderr}`).not.toContain("FAILED")
    // Each of the three columns has a rate in the produce and consume rows.
    for (const row of ["produce: send vs raw loop", "consume: receive (None) vs raw"]) {
      const line = result.stdout.split("\n").find((l) => l.includes(row))
      expect(line, row).toMatch(/\| [\d,]+ \| [\d,]+ \| [\d,]+ \|/)
    }
  }, 150_000)

  it("bench/telemetry.ts: send and receive with and without export, the spans and the scrape checked, exits 0", async () => {
    const result = await run("node", ["scripts/run.mjs", "bench/telemetry.ts", "--size", "5000", "--rounds", "2"], {}, 120_000)
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(result.stderr).not.toContain("FAILED")
    // A rate in each column, spans exported in each row, and both workflows' counters scraped.
    for (const workflow of ["send", "receive"]) {
      const line = result.stdout.split("\n").find((l) => l.startsWith(`| ${workflow} |`))
      expect(line, workflow).toMatch(/^\| \w+ \| [\d,]+ \| [\d,]+ \| [\d.]+ \([\d.]+-[\d.]+\) \| [\d.]+ .* \| [1-9][\d,]* \|$/)
    }
    expect(result.stdout).toContain("metrics scraped with the count 4 time(s)")
  }, 150_000)
})
