// Messages on RabbitMQ 4 with other clients' encodings, on Node, Bun and Deno: what rstream (the
// tutorial's Python client) writes (its bytes, recorded by running it: test/fixtures/amqp) read field
// for field; receive --json | send --json copies a stream with its metadata; a filtered consumer
// reads less and resumes; poison messages with --on-bad-message fail and skip; sub-entry batches.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Queue, Stream } from "effect"
import { Buffer } from "node:buffer"
import * as fs from "node:fs"
import {
  decodeMessage,
  DEFAULT_RETENTION,
  type OutboundMessage,
  messageToJson,
  parseUri,
  StartPosition,
  StreamBroker
} from "../../src/StreamOffsets.ts"
import { cli, piped, port, runtimes, withStream } from "./helpers.ts"

const rstream: Record<string, string> = JSON.parse(fs.readFileSync(new URL("../fixtures/amqp/rstream.json", import.meta.url), "utf8"))
const broker = StreamBroker.layer(Either.getOrThrow(parseUri(`rabbitmq-stream://guest:guest@localhost:${port}/%2f`)))
const EMPTY = new Uint8Array(0)

/** Publishes entries exactly as given (bytes another client wrote, or bytes that are no message at all), confirmed. */
const publishRaw = (stream: string, entries: ReadonlyArray<Uint8Array>) =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const b = yield* StreamBroker
      yield* b.declareStream(stream, DEFAULT_RETENTION)
      const publisher = yield* b.publisher(stream)
      const raw = (data: Uint8Array): OutboundMessage => ({ body: EMPTY, head: data, bodySections: EMPTY, filterValue: undefined })
      yield* publisher.publish(entries.map((data, i) => ({ publishingId: BigInt(i + 1), messages: [raw(data)] })))
      for (let confirmed = 0; confirmed < entries.length;) {
        const c = yield* Queue.take(publisher.confirmations)
        if (c._tag === "Confirmed") confirmed += c.publishingIds.length
      }
    })).pipe(Effect.provide(broker))
  )


const jsonLines = (stdout: string) => stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, any>)
const receiveJson = (runtime: keyof typeof runtimes, stream: string, name: string, extra: ReadonlyArray<string> = []) =>
  cli(runtime, "receive", ["--stream", stream, "--name", name, "--no-marker", "--json", ...extra])

describe("what rstream writes, read by every runtime", () => {
  const names = Object.keys(rstream)
  // What the library decodes from rstream's bytes (the unit tests check it field for field).
  const expected = names.map((name, i) => messageToJson(decodeMessage(Buffer.from(rstream[name]!, "hex"), BigInt(i))))

  for (const runtime of ["node", "bun", "deno"] as const) {
    it(`${runtime}: receive --until-end --json reads every message and every field (zeros, false, empty strings too)`, () =>
      withStream(`rstream-${runtime}`, async (stream) => {
        await publishRaw(stream, names.map((name) => Buffer.from(rstream[name]!, "hex")))
        const received = await receiveJson(runtime, stream, "reader", ["--until-end"])
        expect(received.code, received.stderr).toBe(0)
        expect(received.stderr).toContain(`Consumed ${names.length} messages.`)
        expect(received.stderr).not.toContain("reconnecting")
        const got = jsonLines(received.stdout)
        expect(got).toEqual(expected)
        expect(got[0]).toMatchObject({
          body: "hello 0",
          properties: { messageId: "id-0", correlationId: { ulong: 7 }, contentType: "text/plain" },
          applicationProperties: { region: "eu", n: 0, flag: false, empty: "", none: null }
        })
      }))
  }
})

describe("receive --json | send --json --from -", () => {
  it("copies a stream with its metadata (Node reads, Bun writes, Deno reads the copy)", () =>
    withStream("copy-from", (from) =>
      withStream("copy-to", async (to) => {
        await publishRaw(from, Object.values(rstream).map((h) => Buffer.from(h, "hex")))
        const lines = Array.from({ length: 200 }, (_, i) =>
          JSON.stringify({ body: `m${i}`, applicationProperties: { i, even: i % 2 === 0 }, filterValue: i % 2 === 0 ? "even" : "odd" }))
        const sent = await piped("bun", "send", ["--stream", from, "--from", "-", "--json"], lines.join("\n"))
        expect(sent.code, sent.stderr).toBe(0)
        const original = await receiveJson("node", from, "copier", ["--until-end"])
        expect(original.code, original.stderr).toBe(0)
        const copied = await piped("bun", "send", ["--stream", to, "--from", "-", "--json"], original.stdout)
        expect(copied.code, copied.stderr).toBe(0)
        const copy = await receiveJson("deno", to, "checker", ["--until-end"])
        expect(copy.code, copy.stderr).toBe(0)
        const withoutOffsets = (stdout: string) => jsonLines(stdout).map(({ offset: _, ...rest }) => rest)
        expect(withoutOffsets(copy.stdout)).toEqual(withoutOffsets(original.stdout))
        expect(jsonLines(copy.stdout)).toHaveLength(Object.keys(rstream).length + 200)
      })))

  it("a line that is not a message: what came before is published, then one line naming it (2); --skip-bad-lines passes over it", () =>
    withStream("bad-lines", async (stream) => {
      const input = ['{"body":"a"}', '{"body":"b","applicationProperties":{"n":{"ubyte":300}}}', '{"body":"c"}', "not json", '{"body":"d"}'].join("\n")
      const stopped = await piped("node", "send", ["--stream", stream, "--from", "-", "--json"], input)
      expect(stopped.code).toBe(2)
      expect(stopped.stdout).toContain("Published 1 messages.")
      expect(stopped.stderr.trim().split("\n")).toEqual([
        expect.stringMatching(/^error: line 2 of stdin is not a message: applicationProperties.n: a ubyte must be an integer from 0 to 255, got 300 \(nothing after it was published/)
      ])
      const skipping = await piped("deno", "send", ["--stream", stream, "--from", "-", "--json", "--skip-bad-lines"], input)
      expect(skipping.code, skipping.stderr).toBe(0)
      expect(skipping.stderr).toMatch(/warning: line 2 of stdin skipped: .*\nwarning: line 4 of stdin skipped: not JSON/)
      const all = await receiveJson("bun", stream, "r", ["--until-end"])
      expect(jsonLines(all.stdout).map((m) => m.body)).toEqual(["a", "a", "c", "d"])
    }))
})

describe("stream filtering on the broker", () => {
  it("a filtered consumer is sent fewer messages than the stream holds, gets only its own, and resumes after them", () =>
    withStream("filter", async (stream) => {
      // One send per region: each lands in chunks of its own.
      for (const region of ["eu", "us", "ap"]) {
        const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ body: `${region} ${i}`, filterValue: region }))
        const sent = await piped("node", "send", ["--stream", stream, "--from", "-", "--json"], lines.join("\n"))
        expect(sent.code, sent.stderr).toBe(0)
      }
      // What the broker sends to a filtered subscription, counted before the consumer's own filter.
      const delivered = await Effect.runPromise(
        Effect.scoped(Effect.gen(function*() {
          const b = yield* StreamBroker
          const messages = yield* b.subscribe({ stream, start: StartPosition.First(), filter: { values: ["eu"], matchUnfiltered: false } })
          return yield* messages.pipe(Stream.timeout("2 seconds"), Stream.runCount)
        })).pipe(Effect.provide(broker))
      )
      expect(delivered).toBeGreaterThanOrEqual(3000)
      expect(delivered).toBeLessThan(9000)
      const first = await receiveJson("bun", stream, "eu-reader", ["--filter", "eu", "--idle-timeout", "2s"])
      expect(first.code, first.stderr).toBe(0)
      const bodies = jsonLines(first.stdout).map((m) => m.body)
      expect(bodies).toEqual(Array.from({ length: 3000 }, (_, i) => `eu ${i}`))
      // More of each region; the next run gets only the new "eu" messages.
      const more = ["eu", "us"].map((r) => JSON.stringify({ body: `${r} new`, filterValue: r })).join("\n")
      expect((await piped("node", "send", ["--stream", stream, "--from", "-", "--json"], more)).code).toBe(0)
      const second = await receiveJson("deno", stream, "eu-reader", ["--filter", "eu", "--idle-timeout", "2s"])
      expect(second.code, second.stderr).toBe(0)
      expect(jsonLines(second.stdout).map((m) => m.body)).toEqual(["eu new"])
    }))

  it("bad filter flags are usage errors (2)", async () => {
    for (const args of [["--filter", "eu,"], ["--match-unfiltered"], ["--filter", "eu", "--until-end"], ["--on-bad-message", "maybe"]]) {
      const r = await cli("node", "receive", ["--stream", "s", ...args])
      expect(r.code, args.join(" ")).toBe(2)
      expect(r.stderr.trim().split("\n")).toHaveLength(1)
    }
    for (const args of [["--json"], ["--compression", "gzip"], ["--filter-value", "x", "--sub-entry-size", "5"], ["--property", "novalue"]]) {
      const r = await cli("node", "send", ["--stream", "s", ...args])
      expect(r.code, args.join(" ")).toBe(2)
      expect(r.stderr.trim().split("\n")).toHaveLength(1)
    }
  })
})

describe("a message that cannot be decoded", () => {
  const good = (text: string) => Buffer.from(`005375a0${Buffer.from(text).length.toString(16).padStart(2, "0")}${Buffer.from(text).toString("hex")}`, "hex")
  for (const runtime of ["node", "bun", "deno"] as const) {
    it(`${runtime}: fail stops before it in one line (1), its offset stored; skip says so and moves past it`, () =>
      withStream(`poison-${runtime}`, async (stream) => {
        await publishRaw(stream, [good("a"), good("b"), Buffer.from("raw bytes"), good("c")])
        const failed = await cli(runtime, "receive", ["--stream", stream, "--name", "r", "--no-marker", "--print"])
        expect(failed.code).toBe(1)
        expect(failed.stdout).toBe("0\ta\n1\tb\n")
        expect(failed.stderr).toMatch(/^error: the message at offset 2 of stream ".*" cannot be decoded \(.*\); stopped before it, its offset stored \(--on-bad-message skip moves past such messages\)$/m)
        expect(failed.stderr).not.toContain("reconnecting")
        const skipped = await cli(runtime, "receive", ["--stream", stream, "--name", "r", "--no-marker", "--until-end", "--print", "--on-bad-message", "skip"])
        expect(skipped.code, skipped.stderr).toBe(0)
        expect(skipped.stdout).toBe("3\tc\n")
        expect(skipped.stderr).toMatch(/warning: skipped the message at offset 2 of stream/)
      }))
  }
})

describe("sub-entry batching", () => {
  it("send --sub-entry-size 100 --compression gzip: every message read back at its offset, a named rerun adds nothing", () =>
    withStream("sub-entries", async (stream) => {
      const args = ["--stream", stream, "--count", "1000", "--sub-entry-size", "100", "--compression", "gzip", "--producer", "p"]
      const sent = await cli("node", "send", args)
      expect(sent.code, sent.stderr).toBe(0)
      const again = await cli("bun", "send", args)
      expect(again.stdout).toContain("Skipped 1000 messages")
      const received = await cli("deno", "receive", ["--stream", stream, "--name", "r", "--print"])
      expect(received.code, received.stderr).toBe(0)
      const lines = received.stdout.trim().split("\n")
      expect(lines).toHaveLength(1000)
      expect(lines[0]).toBe("0\thello 0")
      expect(lines[999]).toBe("999\tmarker")
    }))
})
