// Processes killed mid-way, on a real RabbitMQ: nothing lost, nothing duplicated.
import { describe, expect, it } from "@effect/vitest"
import { connect } from "rabbitmq-stream-js-client"
import { cli, deleteStream, parseSummary, port, start, uniqueStream } from "./helpers.ts"

/** Waits until the stream holds at least one chunk (the broker's stats: cheap enough to poll). */
const waitForMessages = async (stream: string) => {
  const client = await connect({ hostname: "localhost", port, username: "guest", password: "guest", vhost: "/" })
  try {
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      const stats = await client.streamStatsRequest(stream).catch(() => undefined)
      if (stats && stats.committedChunkId >= 0n) return
      await new Promise((r) => setTimeout(r, 10))
    }
    throw new Error(`no message reached ${stream} within 30 s`)
  } finally {
    await client.close()
  }
}

describe("send killed with SIGKILL", () => {
  it("runs again with the same producer name: every message exactly once", async () => {
    const stream = uniqueStream("sigkill-send")
    const total = 300_000
    const args = ["--stream", stream, "--count", String(total), "--producer", "batch-1"]
    try {
      const first = start("bun", "send", args)
      await first.waitFor("Publishing")
      await waitForMessages(stream)
      first.child.kill("SIGKILL")
      await first.exit

      const again = await cli("bun", "send", args)
      expect(again.code).toBe(0)
      const skipped = Number(/Skipped (\d+) messages/.exec(again.stdout)?.[1] ?? "0")
      expect(skipped).toBeGreaterThan(0)
      expect(skipped).toBeLessThan(total)
      expect(again.stdout).toContain("Messages confirmed: true.")

      // Offsets 0 .. total-1 with total messages: no gap, no duplicate.
      const check = await cli("bun", "receive", [
        "--stream", stream, "--name", "check", "--no-marker", "--until-end", "--tracking", "none"
      ])
      expect(parseSummary(check.stdout)).toEqual({ first: 0n, last: BigInt(total - 1), messages: total })
    } finally {
      await deleteStream(stream)
    }
  })
})
