// The Producer for apps on RabbitMQ 4, through examples/events-app.ts on Node, Bun and Deno: events
// from 50 concurrent fibers, each confirmed, each once in the stream; an outbox run killed with
// SIGKILL and run again with the same ids; the broker restarted under a Producer in use.
import { describe, expect, it } from "@effect/vitest"
import { cli, expectEachMessageOnce, run, start, waitForMessages, withStream } from "./helpers.ts"

const app = "../examples/events-app"

describe("events from 50 fibers through one Producer", () => {
  for (const runtime of ["node", "bun", "deno"] as const) {
    it(`${runtime}: 100,000 events, every publish confirmed, each event once in the stream`, () =>
      withStream(`producer-${runtime}`, async (stream) => {
        const total = 100_000
        const published = await cli(runtime, "example:events", ["--stream", stream, "--count", String(total), "--fibers", "50"])
        expect(published.code, published.stderr).toBe(0)
        expect(published.stdout).toContain(`events-app: published ${total} from 50 fibers, each confirmed`)
        await expectEachMessageOnce(stream, total)
        // Read back as values of the app's Schema, to the end of the stream.
        const read = await cli(runtime, "example:events", ["--stream", stream, "--consume"])
        expect(read.code, read.stderr).toBe(0)
        const amount = Array.from({ length: total }, (_, i) => (i + 1) % 1000).reduce((a, b) => a + b, 0)
        expect(read.stdout).toContain(`events-app: read ${total} events, amount ${amount}`)
      }), 180_000)
  }
})

describe("an outbox run killed with SIGKILL", () => {
  it("run again with the same publishing ids: only what the broker lacks is published, each event once", () =>
    withStream("outbox-kill", async (stream) => {
      const total = 200_000
      const args = ["--stream", stream, "--count", String(total), "--outbox"]
      const first = start("bun", app, args)
      await waitForMessages(stream)
      first.child.kill("SIGKILL")
      await first.exit
      const again = await cli("node", "example:events", args)
      expect(again.code, again.stderr).toBe(0)
      const [, published, skipped] = /published (\d+), skipped (\d+)/.exec(again.stdout) ?? []
      expect(Number(skipped)).toBeGreaterThan(0)
      expect(Number(published) + Number(skipped)).toBe(total)
      await expectEachMessageOnce(stream, total)
    }), 180_000)
})

describe("the broker restarted under a Producer in use", () => {
  it("every publish is confirmed, nothing lost or doubled", () =>
    withStream("producer-restart", async (stream) => {
      const total = 300_000
      const producer = start("node", app, ["--stream", stream, "--count", String(total), "--fibers", "50"])
      await waitForMessages(stream)
      const restarted = await run("bash", ["scripts/broker.sh", "restart"], {}, 180_000)
      expect(restarted.code, restarted.stderr).toBe(0)
      const exit = await producer.exitWithin(180_000)
      expect(exit.code, exit.stderr).toBe(0)
      // The restart happened under it (a run that ended first would prove nothing).
      // (Effect's default logger, which the example keeps, writes to stdout.)
      expect(exit.stdout + exit.stderr).toContain("publishing again what was not confirmed")
      expect(exit.stdout).toContain(`events-app: published ${total} from 50 fibers, each confirmed`)
      await expectEachMessageOnce(stream, total)
    }), 300_000)
})
