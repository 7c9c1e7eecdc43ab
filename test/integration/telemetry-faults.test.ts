// A lost connection as /metrics shows it, on the real broker under Node: this process's own
// connections are cut (`ss -K`, root: the broker is shared, so never `broker.sh cut`, which closes
// everyone's), and the state, the reconnect and the outage are counted.
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { cli, start, withStream } from "./helpers.ts"
import { freePort, sample, scrapeUntil } from "./scrape.ts"

/**
 * Cuts the TCP connections of one process to the broker, and only those (the broker is shared:
 * `broker.sh cut` would close everyone's): `ss -K` destroys the sockets, as a network fault would.
 */
const cutConnectionsOf = (pid: number) => {
  const sockets = execFileSync("ss", ["-tnpH", "dport = :5552"], { encoding: "utf8" })
    .split("\n").filter((line) => line.includes(`pid=${pid},`))
  const ports = sockets.map((line) => line.trim().split(/\s+/)[3]!.split(":").at(-1)!)
  for (const sport of ports) execFileSync("ss", ["-K", "dport = :5552", `sport = :${sport}`], { stdio: "ignore" })
  return ports.length
}

describe("a lost connection on /metrics", () => {
  it("its own connections cut: the state goes back to 1, one reconnect and one outage counted", () =>
    withStream("metrics-cut", async (stream) => {
      const sent = await cli("node", "send", ["--stream", stream, "--count", "100"])
      expect(sent.code).toBe(0)
      const port = await freePort()
      const receiving = start("node", "receive", ["--stream", stream, "--name", "cut", "--no-marker", "--metrics-port", String(port)])
      try {
        await scrapeUntil(port, (t) => sample(t, "stream_offsets_messages_consumed_total", { stream }) === 100)
        expect(cutConnectionsOf(receiving.child.pid!)).toBeGreaterThan(0)
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
