import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, Schedule, TestClock } from "effect"
import { bodyText, MemoryBroker, send, StreamBroker, tutorialMessages, toOutbound } from "../../src/StreamOffsets.ts"

describe("send", () => {
  it.effect("declares the stream with 2 GB retention and publishes hello 0 .. marker", () =>
    Effect.gen(function*() {
      const summary = yield* send({ stream: "s", messages: tutorialMessages(4) })
      expect(summary).toEqual({ stream: "s", sent: 4, confirmed: 4, skipped: 0 })
      const memory = yield* MemoryBroker
      expect((yield* memory.messages("s")).map(bodyText)).toEqual(["hello 0", "hello 1", "hello 2", "marker"])
      expect(yield* memory.retention("s")).toEqual(Option.some({ maxLengthBytes: 2_000_000_000 }))
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.effect("completes only after the last confirm has arrived", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(send({ stream: "s", messages: tutorialMessages(3), confirmTimeout: "1 minute" }))
      yield* TestClock.adjust("4 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const summary = yield* Fiber.join(fiber)
      expect(summary.confirmed).toBe(3)
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "5 seconds" }))))

  it.effect("a missing confirm fails with ConfirmTimeout naming how many are unconfirmed", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        send({ stream: "s", messages: tutorialMessages(10), confirmTimeout: "3 seconds" }).pipe(Effect.flip)
      )
      yield* TestClock.adjust("3 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("ConfirmTimeout")
      if (error._tag === "ConfirmTimeout") expect(error.unconfirmed).toBe(1)
      expect(error.message).toContain("1 message(s)")
    }).pipe(Effect.provide(StreamBroker.layerMemory({ dropConfirm: (body) => new TextDecoder().decode(body) === "hello 7" }))))

  it.effect("a rejected message fails with PublishError and its code", () =>
    Effect.gen(function*() {
      const error = yield* send({ stream: "s", messages: tutorialMessages(10) }).pipe(Effect.flip)
      expect(error._tag).toBe("PublishError")
      if (error._tag === "PublishError") {
        expect(error.code).toBe(16)
        expect(error.publishingId).toBe(6n)
      }
      expect(error.message).toContain("code 16")
    }).pipe(Effect.provide(StreamBroker.layerMemory({ rejectPublish: (_, id) => id === 6n ? 16 : undefined }))))

  it.effect("a named producer's rejected message fails the send at once: a rejection is not retried", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(send({ stream: "s", messages: tutorialMessages(10), producerName: "p" }).pipe(Effect.flip))
      // No clock moves: a retry (a schedule's sleep) would leave the fiber waiting here.
      for (let i = 0; i < 1000 && fiber.unsafePoll() === null; i++) yield* Effect.yieldNow()
      const exit = fiber.unsafePoll()
      expect(exit, "the send still runs: the rejection is being retried").not.toBeNull()
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("PublishError")
    }).pipe(Effect.provide(StreamBroker.layerMemory({ rejectPublish: (_, id) => id === 6n ? 16 : undefined }))))

  it.effect("waits for confirms when maxInFlight messages are unconfirmed", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(send({ stream: "s", messages: tutorialMessages(6), maxInFlight: 2 }))
      yield* TestClock.adjust("1 second")
      // Two in flight, none confirmed yet: only two were appended.
      expect((yield* (yield* MemoryBroker).messages("s")).length).toBe(2)
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(fiber)).confirmed).toBe(6)
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "2 seconds" }))))

  it.effect("is idempotent for the same retention and refuses different retention", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: ["a"] })
      yield* send({ stream: "s", messages: ["b"] })
      const error = yield* send({ stream: "s", messages: ["c"], retention: { maxAge: "1D" } }).pipe(Effect.flip)
      expect(error._tag).toBe("StreamPreconditionFailed")
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.effect("a named producer publishes only what the broker does not have yet", () =>
    Effect.gen(function*() {
      const broker = yield* StreamBroker
      yield* broker.declareStream("s", {})
      // A first run that got 4 of 10 messages out before it died.
      yield* Effect.scoped(Effect.gen(function*() {
        const publisher = yield* broker.publisher("s", { name: "p" })
        const firstFour = [...tutorialMessages(10)].slice(0, 4)
        yield* publisher.publish(firstFour.map((body, i) => ({ publishingId: BigInt(i + 1), messages: [toOutbound(body)] })))
      }))
      const again = yield* send({ stream: "s", messages: tutorialMessages(10), producerName: "p", retention: {} })
      expect(again).toEqual({ stream: "s", sent: 6, confirmed: 6, skipped: 4 })
      const bodies = (yield* (yield* MemoryBroker).messages("s")).map(bodyText)
      expect(bodies).toEqual([...tutorialMessages(10)])
      // Nothing is missing any more: a third run sends nothing.
      const third = yield* send({ stream: "s", messages: tutorialMessages(10), producerName: "p", retention: {} })
      expect(third).toEqual({ stream: "s", sent: 0, confirmed: 0, skipped: 10 })
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.effect("the broker drops a named producer's message whose id it already has", () =>
    Effect.gen(function*() {
      const broker = yield* StreamBroker
      yield* broker.declareStream("s", {})
      yield* Effect.scoped(Effect.gen(function*() {
        const publisher = yield* broker.publisher("s", { name: "p" })
        const entry = (text: string, id: bigint) => [{ publishingId: id, messages: [toOutbound(text)] }]
        yield* publisher.publish(entry("a", 1n))
        yield* publisher.publish(entry("a again", 1n))
        yield* publisher.publish(entry("b", 2n))
      }))
      expect((yield* (yield* MemoryBroker).messages("s")).map(bodyText)).toEqual(["a", "b"])
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.effect("a named producer survives a lost connection: every message exactly once", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const fiber = yield* Effect.fork(
        send({ stream: "s", messages: tutorialMessages(50), producerName: "p", maxInFlight: 10, confirmTimeout: "1 minute" })
      )
      // Confirms take 1 s: ten messages are out, none confirmed, when the connection drops.
      yield* TestClock.adjust("500 millis")
      yield* memory.loseConnection
      yield* TestClock.adjust("1 minute")
      const summary = yield* Fiber.join(fiber)
      expect(summary.confirmed).toBe(summary.sent)
      expect((yield* memory.messages("s")).map(bodyText)).toEqual([...tutorialMessages(50)])
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "1 second" }))))

  it.live("a named producer reading an async source loses nothing when the connection drops mid-batch", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      // A slow source (a pipe, say): a message every 5 ms; the connection drops while a batch is read.
      const source = async function*() {
        for (let i = 0; i < 20; i++) {
          await new Promise((resolve) => setTimeout(resolve, 5))
          yield `m${i}`
        }
      }
      const fiber = yield* Effect.fork(send({ stream: "s", messages: source(), producerName: "p" }))
      yield* Effect.sleep("42 millis")
      yield* memory.loseConnection
      const summary = yield* Fiber.join(fiber)
      expect(summary.confirmed).toBe(20)
      expect((yield* memory.messages("s")).map(bodyText)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`))
    }).pipe(Effect.provide(StreamBroker.layerMemory({ retry: Schedule.spaced("10 millis") }))))

  it.effect("a rejected message fails the send at once, also while the window is full", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        send({ stream: "s", messages: tutorialMessages(50), maxInFlight: 5, confirmTimeout: "1 minute" }).pipe(Effect.flip)
      )
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("PublishError")
    }).pipe(Effect.provide(StreamBroker.layerMemory({ rejectPublish: () => 17, confirmDelay: "10 millis" }))))

  it.effect("an unnamed producer fails on a lost connection: it cannot tell what the broker has", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const fiber = yield* Effect.fork(send({ stream: "s", messages: tutorialMessages(50), maxInFlight: 10 }).pipe(Effect.flip))
      yield* TestClock.adjust("500 millis")
      yield* memory.loseConnection
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("ConnectionLost")
      expect(error.message).toContain("connection to the broker was lost")
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "1 second" }))))

  it.effect("rejects an invalid stream name before touching the broker", () =>
    Effect.gen(function*() {
      const error = yield* send({ stream: "has space", messages: ["a"] }).pipe(Effect.flip)
      expect(error._tag).toBe("InvalidArgument")
      expect(yield* (yield* StreamBroker).streamExists("has space")).toBe(false)
    }).pipe(Effect.provide(StreamBroker.layerMemory())))
})

describe("send refuses bad input before it touches the broker", () => {
  it.effect("max-age, names and sizes the broker would choke on or ignore: InvalidArgument, nothing declared", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const refused = (options: Partial<Parameters<typeof send>[0]>) =>
        send({ stream: "s", messages: ["a"], ...options }).pipe(Effect.flip, Effect.map((e) => [e._tag, e.message]))
      expect(yield* refused({ retention: { maxAge: "banana" } })).toEqual([
        "InvalidArgument",
        'max-age must be a number and a unit (Y, M, D, h, m, s), e.g. 7D or 12h, got "banana"'
      ])
      expect((yield* refused({ retention: { maxAge: "7 days" } }))[0]).toBe("InvalidArgument")
      expect((yield* refused({ retention: { maxLengthBytes: 0 } }))[1]).toContain("max-length-bytes must be a positive integer")
      expect((yield* refused({ producerName: "" }))[1]).toContain("producer name must be 1 to 255 bytes")
      expect((yield* refused({ producerName: "é".repeat(128) }))[1]).toContain("got 256 bytes")
      expect(Option.isNone(yield* memory.retention("s"))).toBe(true)
      // The limits themselves are fine.
      yield* send({ stream: "s", messages: ["a"], producerName: "p".repeat(255), retention: { maxAge: "7D" } })
    }).pipe(Effect.provide(StreamBroker.layerMemory())))
})
