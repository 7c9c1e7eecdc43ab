// A lost connection as /metrics shows it, on the real broker under Node: the broker closes every
// client connection (`broker.sh cut`; test files run one at a time), and the state, the reconnect
// and the outage are counted.
import { describe, expect, it } from "@effect/vitest"
import { cli, run, start, withStream } from "./helpers.ts"
import { freePort, sample, scrapeUntil } from "./scrape.ts"

describe("a lost connection on /metrics", () => {
  it("a broker cut: the state goes back to 1, one reconnect and one outage counted", () =>
    withStream("metrics-cut", async (stream) => {
      const sent = await cli("node", "send", ["--stream", stream, "--count", "100"])
      expect(sent.code).toBe(0)
      const port = await freePort()
      const receiving = start("node", "receive", ["--stream", stream, "--name", "cut", "--no-marker", "--metrics-port", String(port)])
      try {
        await scrapeUntil(port, (t) => sample(t, "stream_offsets_messages_consumed_total", { stream }) === 100)
        const cut = await run("bash", ["scripts/broker.sh", "cut"])
        expect(cut.code, cut.stderr).toBe(0)
        const after = await scrapeUntil(port, (t) => sample(t, "stream_offsets_reconnects_total", {}) === 1)
        expect(sample(after, "stream_offsets_connection_up", {})).toBe(1)
        expect(sample(after, "stream_offsets_disconnected_seconds_count", {})).toBe(1)
      } finally {
        receiving.interrupt()
      }
      const done = await receiving.exitWithin(30_000)
      expect(done.code).toBe(0)
      expect(done.stdout).toContain("Consumed 100 messages.")
    }), 120_000)
})
