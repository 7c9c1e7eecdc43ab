// Beyond the tutorial, end to end on RabbitMQ: SIGINT mid-stream, --until-end, single active
// consumer hand-over between processes, and the offset inspection CLI.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { parseUri, send, StreamBroker } from "../../src/StreamOffsets.ts"
import { cli, parseSummary, port, start, uniqueStream, withStream } from "./helpers.ts"

const broker = StreamBroker.layer(Either.getOrThrow(parseUri(`rabbitmq-stream://guest:guest@localhost:${port}/%2f`)))

/** Publishes `count` messages (`m0`, `m1`, ...) with the library's producer. */
const publish = (stream: string, count: number, prefix = "m") =>
  Effect.runPromise(
    send({
      stream,
      messages: (function*() {
        for (let i = 0; i < count; i++) yield `${prefix}${i}`
      })()
    }).pipe(Effect.provide(broker))
  )

describe("receive, stopped and resumed", () => {
  it("SIGINT mid-stream stores the offset; the next run continues after it with no gap", () =>
    withStream("sigint", async (stream) => {
      const total = 300_000
      await publish(stream, total)
      const first = start("node", "receive", ["--stream", stream, "--name", "sig", "--no-marker"])
      await first.waitFor("First message received.")
      first.interrupt()
      const stopped = await first.exit
      expect(stopped.stderr).toBe("")
      expect(stopped.code).toBe(0)
      const a = parseSummary(stopped.stdout)
      expect(a.messages).toBeGreaterThan(0)
      expect(a.messages).toBeLessThan(total) // it really was stopped mid-stream

      const rest = await cli("bun", "receive", ["--stream", stream, "--name", "sig", "--no-marker", "--until-end"])
      expect(rest.code).toBe(0)
      const b = parseSummary(rest.stdout)
      expect(b.first!).toBeGreaterThan(a.last!)
      // Every message exactly once across the two runs.
      expect(a.messages + b.messages).toBe(total)
      expect(b.last).toBe(BigInt(total - 1))
    }))

  it("--until-end stops at the last message that was there at the start", () =>
    withStream("until-end", async (stream) => {
      await publish(stream, 250)
      const r = await cli("bun", "receive", ["--stream", stream, "--no-marker", "--until-end"])
      expect(r.code).toBe(0)
      expect(parseSummary(r.stdout)).toEqual({ first: 0n, last: 249n, messages: 250 })
      // Its own final store is now a tracking entry at the tail: the next run finds nothing to do.
      const again = await cli("bun", "receive", ["--stream", stream, "--no-marker", "--until-end"])
      expect(again.code).toBe(0)
      expect(parseSummary(again.stdout).messages).toBe(0)
    }))
})

describe("single active consumer", () => {
  it("the active process stops, the other takes over after its stored offset; nothing twice", () =>
    withStream("sac", async (stream) => {
      await publish(stream, 100, "a")
      const args = ["--stream", stream, "--name", "group", "--single-active", "--no-marker"]
      const active = start("bun", "receive", args)
      await active.waitFor("First message received.")
      const standby = start("deno", "receive", [...args, "--count", "50"])
      await standby.waitFor("Started consuming...")
      await new Promise((r) => setTimeout(r, 1000))
      expect(standby.output()).not.toContain("First message received.")
      active.interrupt()
      const a = await active.exit
      expect(a.code).toBe(0)
      expect(parseSummary(a.stdout)).toMatchObject({ first: 0n, last: 99n, messages: 100 })

      await publish(stream, 50, "b")
      const b = await standby.exit
      expect(b.stderr).toBe("")
      expect(b.code).toBe(0)
      const summary = parseSummary(b.stdout)
      expect(summary.messages).toBe(50)
      expect(summary.first!).toBeGreaterThan(99n)
    }))
})

describe("offset CLI", () => {
  it("shows none, then the stored offset, with the stream's bounds and the lag", () =>
    withStream("inspect", async (stream) => {
      await publish(stream, 40)
      const before = await cli("deno", "offset", ["--stream", stream, "--name", "insp"])
      expect(before.code).toBe(0)
      expect(before.stdout).toContain("stored offset: none")
      expect(before.stdout).toContain("first offset: 0")
      expect(before.stdout).toContain("last offset: 39")
      expect(before.stdout).toContain("lag: 40 offsets")

      await cli("bun", "receive", ["--stream", stream, "--name", "insp", "--no-marker", "--count", "25"])
      const after = await cli("node", "offset", ["--stream", stream, "--name", "insp"])
      expect(after.code).toBe(0)
      expect(after.stdout).toContain("stored offset: 24")
      expect(after.stdout).toContain("lag: 15 offsets")
    }))

  it("says so for a stream that does not exist", async () => {
    const r = await cli("bun", "offset", ["--stream", uniqueStream("nope")])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^error: stream ".*" does not exist/)
  })
})

describe("file offset store", () => {
  it("keeps offsets in a directory and resumes from them", () =>
    withStream("file-store", async (stream) => {
      await publish(stream, 30)
      const dir = `/tmp/${uniqueStream("kv")}`
      const store = ["--offset-store", `file:${dir}`]
      const a = await cli("bun", "receive", ["--stream", stream, "--no-marker", "--count", "10", ...store])
      const b = await cli("deno", "receive", ["--stream", stream, "--no-marker", "--until-end", ...store])
      expect(parseSummary(a.stdout)).toMatchObject({ first: 0n, last: 9n })
      expect(parseSummary(b.stdout)).toMatchObject({ first: 10n, last: 29n, messages: 20 })
      // The broker holds no offset for this consumer: it was all in the files.
      const server = await cli("node", "offset", ["--stream", stream])
      expect(server.stdout).toContain("stored offset: none")
    }))
})

