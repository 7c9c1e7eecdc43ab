// Messages end to end on the memory broker (which stores AMQP 1.0 bytes and decodes them as the
// real consumer does): properties both ways, what cannot be decoded (fail, skip), stream filtering
// (chunks skipped by their Bloom filter, false positives, offsets moved past what was filtered out),
// sub-entry batching, and bad input.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Stream, TestClock } from "effect"
import {
  Amqp,
  bodyText,
  consume,
  type ConsumeOptions,
  encodeMessage,
  inspectOffset,
  MemoryBroker,
  OffsetStore,
  type OutgoingMessage,
  receive,
  send,
  StreamBroker,
  type StreamMessage,
  TrackingStrategy
} from "../../src/StreamOffsets.ts"

const layers = (options: Parameters<typeof StreamBroker.layerMemory>[0] = {}) =>
  OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerMemory({ chunkSize: 5, ...options })))

const bodies = (seen: ReadonlyArray<StreamMessage>) => seen.map(bodyText)

/** Every message to the end of the stream (no marker: until idle for a second of TestClock), and the summary. */
const readAll = (stream: string, consumerName: string, options: Partial<ConsumeOptions> = {}) =>
  Effect.gen(function*() {
    const seen: Array<StreamMessage> = []
    const fiber = yield* receive({
      stream,
      consumerName,
      stop: { marker: false, idleTimeout: "1 second" },
      tracking: TrackingStrategy.None(),
      onMessage: (message) => Effect.sync(() => void seen.push(message)),
      ...options
    }).pipe(Effect.fork)
    yield* TestClock.adjust("1 second")
    const summary = yield* Fiber.join(fiber)
    return { seen, summary }
  })

describe("messages with properties, both ways", () => {
  it.effect("what send writes, receive reads field for field", () =>
    Effect.gen(function*() {
      const message: OutgoingMessage = {
        body: "order 1",
        properties: { messageId: "m-1", correlationId: 5n, contentType: "application/json", creationTime: new Date(1_700_000_000_000) },
        applicationProperties: { region: "eu", n: 0, urgent: false, note: "", big: 2n ** 40n, tag: Amqp.symbol("t") },
        messageAnnotations: { "x-opt-source": "test" },
        header: { durable: true, priority: 4 }
      }
      yield* send({ stream: "s", messages: [message, "plain", { body: new Uint8Array([0xff]), amqpValue: "value body" }] })
      const { seen } = yield* readAll("s", "c")
      expect(seen).toHaveLength(3)
      const [first, plain, value] = seen
      expect(bodyText(first!)).toBe("order 1")
      expect(first!.properties).toEqual(message.properties)
      expect(first!.applicationProperties).toEqual(message.applicationProperties)
      expect(first!.messageAnnotations).toEqual(message.messageAnnotations)
      expect(first!.header).toEqual(message.header)
      expect(plain).toEqual({ offset: 1n, body: new TextEncoder().encode("plain") })
      expect(value!.amqpValue).toBe("value body")
    }).pipe(Effect.provide(layers())))

  it.effect("a message AMQP cannot carry fails the send with its position; nothing of its batch is published", () =>
    Effect.gen(function*() {
      const error = yield* send({
        stream: "s",
        messages: ["a", "b", { body: "c", applicationProperties: { n: Amqp.ubyte(300) } }, "d"]
      }).pipe(Effect.flip)
      expect(error._tag).toBe("InvalidArgument")
      expect(error.message).toMatch(/^message 3 cannot be published: applicationProperties.n: a ubyte must be an integer from 0 to 255, got 300/)
      expect(yield* (yield* MemoryBroker).messages("s")).toEqual([])
    }).pipe(Effect.provide(layers())))
})

describe("messages that cannot be decoded", () => {
  /** a, b, then bytes that are not AMQP 1.0 (rstream's binary codec), then c, d. */
  const poisoned = Effect.gen(function*() {
    yield* send({ stream: "s", messages: ["a", "b"] })
    yield* (yield* MemoryBroker).append("s", [new TextEncoder().encode("raw bytes")])
    yield* send({ stream: "s", messages: ["c", "d"] })
  })

  it.effect("fail (the default): the messages before it are processed and stored, then a typed error names the stream and offset", () =>
    Effect.gen(function*() {
      yield* poisoned
      const seen: Array<string> = []
      const exit = yield* receive({
        stream: "s",
        consumerName: "c",
        stop: { marker: false },
        onMessage: (m) => Effect.sync(() => void seen.push(bodyText(m)))
      }).pipe(Effect.exit)
      expect(seen).toEqual(["a", "b"])
      expect(exit).toEqual(Exit.fail(expect.objectContaining({ _tag: "MessageDecodeError", stream: "s", offset: 2n })))
      const error = Option.getOrThrow(Exit.isFailure(exit) ? Option.some(exit.cause) : Option.none())
      expect(String(error)).toMatch(/offset 2 of stream "s" cannot be decoded/)
      expect((yield* inspectOffset("s", "c")).storedOffset).toEqual(Option.some(1n))
      // Run again: it stops at the same message, having processed nothing twice.
      const again = yield* readAll("s", "c").pipe(Effect.flip)
      expect(again._tag).toBe("MessageDecodeError")
    }).pipe(Effect.provide(layers())))

  it.effect("skip: moves past it and goes on; a poison message last in the stream is stored past too", () =>
    Effect.gen(function*() {
      yield* poisoned
      yield* (yield* MemoryBroker).append("s", [new Uint8Array([0, 0x53, 0x75, 0xa0, 9])])
      const { seen, summary } = yield* readAll("s", "c", { onDecodeError: "skip" })
      expect(seen.map(bodyText)).toEqual(["a", "b", "c", "d"])
      expect(summary.lastOffset).toEqual(Option.some(3n + 1n))
      // Offsets: a 0, b 1, poison 2, c 3, d 4, poison 5: the consumer is past 5.
      expect(summary.storedOffset).toEqual(Option.some(5n))
    }).pipe(Effect.provide(layers())))

  it.effect("skip with untilEnd: an undecodable last message is the end", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: ["a"] })
      yield* (yield* MemoryBroker).append("s", [new Uint8Array([1, 2, 3])])
      const summary = yield* receive({ stream: "s", consumerName: "c", onDecodeError: "skip", stop: { marker: false, untilEnd: true } })
      expect(summary).toMatchObject({ messages: 1, stoppedBy: "end", storedOffset: Option.some(1n) })
    }).pipe(Effect.provide(layers())))

  it.effect("consume: the Stream emits what comes before it, then fails; what was committed is stored", () =>
    Effect.gen(function*() {
      yield* poisoned
      const seen: Array<string> = []
      const exit = yield* consume({ stream: "s", consumerName: "c", stop: { marker: false } }).pipe(
        Stream.tap((m) => Effect.zipRight(Effect.sync(() => void seen.push(bodyText(m))), m.commit)),
        Stream.runDrain,
        Effect.exit
      )
      expect(seen).toEqual(["a", "b"])
      expect(Exit.isFailure(exit)).toBe(true)
      expect((yield* inspectOffset("s", "c")).storedOffset).toEqual(Option.some(1n))
    }).pipe(Effect.provide(layers())))
})

describe("stream filtering", () => {
  const region = (r: string | undefined, i: number): OutgoingMessage =>
    r === undefined ? { body: `none ${i}` } : { body: `${r} ${i}`, filterValue: r }
  /** Chunks of 5: eu only, us only, eu and us mixed, unfiltered only. */
  const regions = Effect.gen(function*() {
    const plan: Array<string | undefined> = ["eu", "eu", "eu", "eu", "eu", "us", "us", "us", "us", "us", "eu", "us", "us", "us", "us"]
    const all = [...plan, undefined, undefined, undefined, undefined, undefined].map(region)
    // One message a send: the memory broker then cuts chunks exactly as planned.
    for (const m of all) yield* send({ stream: "s", messages: [m] })
  })
  it.effect("only the matching messages; chunks without the value are never delivered; the offset moves past what was filtered out", () =>
    Effect.gen(function*() {
      yield* regions
      const { seen, summary } = yield* readAll("s", "c", { filter: { values: ["eu"] } })
      expect(bodies(seen)).toEqual(["eu 0", "eu 1", "eu 2", "eu 3", "eu 4", "eu 10"])
      // The mixed chunk (10-14) was delivered and its "us" messages dropped: stored past them.
      expect(summary.storedOffset).toEqual(Option.some(14n))
      // A restart reads nothing again.
      const again = yield* readAll("s", "c", { filter: { values: ["eu"] } })
      expect(again.seen).toEqual([])
    }).pipe(Effect.provide(layers())))

  it.effect("matchUnfiltered: also the messages published without a filter value", () =>
    Effect.gen(function*() {
      yield* regions
      const { seen } = yield* readAll("s", "c", { filter: { values: ["us"], matchUnfiltered: true } })
      expect(bodies(seen)).toEqual([
        ...[5, 6, 7, 8, 9, 11, 12, 13, 14].map((i) => `us ${i}`),
        ...[15, 16, 17, 18, 19].map((i) => `none ${i}`)
      ])
    }).pipe(Effect.provide(layers())))

  it.effect("a Bloom filter false positive: the chunk comes, its messages are filtered out, and the offset moves past it", () =>
    Effect.gen(function*() {
      // 200 values in one chunk of a 16-byte filter: nearly every bit is set, so "eu" matches it.
      yield* send({ stream: "s", messages: Array.from({ length: 200 }, (_, i) => region(`v${i}`, i)) })
      const { seen, summary } = yield* readAll("s", "c", { filter: { values: ["eu"] } })
      expect(seen).toEqual([])
      expect(summary.storedOffset).toEqual(Option.some(199n))
    }).pipe(Effect.provide(layers({ chunkSize: 1000 }))))

  it.effect("messages another client gave a filter value to the broker only: kept by default, filtered by `property`", () =>
    Effect.gen(function*() {
      // As rstream writes them: the filter value in the publish frame, the region in an application property.
      const foreign = ["eu", "us", "eu"].map((r) => encodeMessage({ body: `${r} from rstream`, applicationProperties: { region: r } }))
      const memory = yield* MemoryBroker
      yield* send({ stream: "s", messages: [] })
      yield* memory.append("s", [foreign[0]!], "eu")
      yield* memory.append("s", [foreign[1]!], "us")
      yield* memory.append("s", [foreign[2]!, encodeMessage({ body: "us, same chunk", applicationProperties: { region: "us" } })], "eu")
      const byDefault = yield* readAll("s", "a", { filter: { values: ["eu"] } })
      // The broker skips the "us" chunk; without the annotation nothing tells the rest apart: kept.
      expect(bodies(byDefault.seen)).toEqual(["eu from rstream", "eu from rstream", "us, same chunk"])
      const byProperty = yield* readAll("s", "b", { filter: { values: ["eu"], property: "region" } })
      expect(bodies(byProperty.seen)).toEqual(["eu from rstream", "eu from rstream"])
    }).pipe(Effect.provide(layers())))

  it.effect("a post filter of the caller's (the filter value kept in an application property, as other clients do)", () =>
    Effect.gen(function*() {
      yield* send({
        stream: "s",
        messages: ["eu", "us", "eu"].map((r) => ({ body: r, filterValue: r, applicationProperties: { region: r } }))
      })
      const { seen } = yield* readAll("s", "c", {
        filter: { values: ["eu"], postFilter: (m) => m.applicationProperties?.["region"] === "eu" }
      })
      expect(bodies(seen)).toEqual(["eu", "eu"])
    }).pipe(Effect.provide(layers())))

  it.effect("bad filters are refused before connecting; a broker without filtering says so", () =>
    Effect.gen(function*() {
      const refuse = (filter: any, stop = {}) =>
        receive({ stream: "s", consumerName: "c", filter, stop }).pipe(Effect.flip, Effect.map((e) => e.message))
      yield* send({ stream: "s", messages: ["a"] })
      expect(yield* refuse({ values: [] })).toMatch(/at least one filter value/)
      expect(yield* refuse({ values: [""] })).toMatch(/non-empty string/)
      expect(yield* refuse({ values: ["eu"] }, { untilEnd: true })).toMatch(/untilEnd cannot be used with a filter/)
    }).pipe(Effect.provide(layers())))

  it.effect("a broker without filtering (older than 3.13): publishing and consuming with filters fail in one line", () =>
    Effect.gen(function*() {
      const published = yield* send({ stream: "s", messages: [{ body: "a", filterValue: "eu" }] }).pipe(Effect.flip)
      expect(published.message).toMatch(/does not support stream filtering \(RabbitMQ 3.13 or later/)
      const consumed = yield* receive({ stream: "s", consumerName: "c", filter: { values: ["eu"] } }).pipe(Effect.flip)
      expect(consumed.message).toMatch(/does not support stream filtering/)
    }).pipe(Effect.provide(layers({ filtering: false }))))
})

describe("sub-entry batching", () => {
  it.effect("batches of 10 (gzip) read back as messages; a named producer run again adds nothing", () =>
    Effect.gen(function*() {
      const messages = Array.from({ length: 95 }, (_, i) => `m${i}`)
      const first = yield* send({ stream: "s", messages, producerName: "p", subEntrySize: 10, compression: "gzip" })
      expect(first).toMatchObject({ sent: 95, confirmed: 95 })
      const again = yield* send({ stream: "s", messages, producerName: "p", subEntrySize: 10, compression: "gzip" })
      expect(again).toMatchObject({ sent: 0, skipped: 95 })
      const { seen } = yield* readAll("s", "c")
      expect(bodies(seen)).toEqual(messages)
    }).pipe(Effect.provide(layers())))

  it.effect("bad batching options are refused before anything is declared", () =>
    Effect.gen(function*() {
      const refuse = (options: object) => send({ stream: "s", messages: ["a"], ...options }).pipe(Effect.flip, Effect.map((e) => e.message))
      expect(yield* refuse({ compression: "gzip" })).toMatch(/give subEntrySize > 1/)
      expect(yield* refuse({ subEntrySize: 0 })).toMatch(/from 1 to 65535/)
      expect(yield* refuse({ compression: "zstd", subEntrySize: 2 })).toMatch(/"none" or "gzip"/)
      const filtered = yield* send({ stream: "s", messages: [{ body: "a", filterValue: "eu" }], subEntrySize: 2 }).pipe(Effect.flip)
      expect(filtered.message).toMatch(/sub-entry batches cannot carry filter values/)
      expect(yield* (yield* MemoryBroker).messages("s")).toEqual([])
    }).pipe(Effect.provide(layers())))
})
