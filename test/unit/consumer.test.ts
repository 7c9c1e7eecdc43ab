import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Option, Stream, TestClock } from "effect"
import {
  isTutorialMarker,
  bodyText,
  MemoryBroker,
  MemoryOffsetStore,
  OffsetStore,
  receive,
  send,
  StartPosition,
  StreamBroker,
  TrackingStrategy,
  tutorialMessages,
  type StreamMessage
} from "../../src/StreamOffsets.ts"

// A fresh in-memory broker whose OffsetStore is the broker's own (server-side) store, as in production.
const serverSide = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerMemory({ chunkSize: 7 })))
// A fresh in-memory broker with an in-memory OffsetStore that tests can inspect.
const memoryStore = Layer.merge(StreamBroker.layerMemory({ chunkSize: 7 }), OffsetStore.layerMemory)

const collect = (stream: string, consumerName: string, storeEvery = 10) =>
  Effect.gen(function*() {
    const seen: Array<StreamMessage> = []
    const summary = yield* receive({
      stream,
      consumerName,
      tracking: TrackingStrategy.Manual({ every: storeEvery }),
      stop: { marker: isTutorialMarker },
      onMessage: (message) => Effect.sync(() => void seen.push(message))
    })
    return { summary, bodies: seen.map(bodyText), offsets: seen.map((m) => m.offset) }
  })

describe("receive", () => {
  it.effect("starts at the first message when nothing is stored and stops at the marker", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(5) })
      const { bodies, summary } = yield* collect("s", "c")
      expect(bodies).toEqual(["hello 0", "hello 1", "hello 2", "hello 3", "marker"])
      expect(summary.messages).toBe(5)
      expect(summary.firstOffset).toEqual(Option.some(0n))
      expect(summary.lastOffset).toEqual(Option.some(4n))
      expect(summary.resumed).toBe(false)
      expect(summary.stoppedBy).toBe("marker")
    }).pipe(Effect.provide(serverSide)))

  it.effect("resumes at stored + 1 and processes nothing after the marker", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(30) })
      yield* send({ stream: "s", messages: tutorialMessages(30) })
      const first = yield* collect("s", "c")
      const second = yield* collect("s", "c")
      expect(first.bodies).toHaveLength(30)
      expect(first.bodies.at(-1)).toBe("marker")
      expect(second.bodies).toHaveLength(30)
      expect(second.bodies[0]).toBe("hello 0")
      expect(second.bodies.at(-1)).toBe("marker")
      expect(second.summary.resumed).toBe(true)
      // The broker's tracking entries take offsets: resuming skips them, never a message.
      expect(second.offsets[0]! > first.offsets.at(-1)!).toBe(true)
      expect(second.summary.start).toEqual(StartPosition.Offset({ offset: first.offsets.at(-1)! + 1n }))
    }).pipe(Effect.provide(serverSide)))

  it.effect("drops the messages of a chunk that come before the requested offset", () =>
    Effect.gen(function*() {
      // chunkSize 7: offsets 0..6 form one chunk. Stored offset 2 asks for 3; the chunk starts at 0.
      yield* send({ stream: "s", messages: tutorialMessages(7) })
      const offsets = yield* OffsetStore
      yield* offsets.store("c", "s", 2n)
      const { bodies, offsets: seen } = yield* collect("s", "c")
      expect(seen[0]).toBe(3n)
      expect(bodies).toEqual(["hello 3", "hello 4", "hello 5", "marker"])
    }).pipe(Effect.provide(memoryStore)))

  it.effect("a stored offset of 0 resumes at the next message", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(3) })
      const offsets = yield* OffsetStore
      yield* offsets.store("c", "s", 0n)
      expect(yield* offsets.query("c", "s")).toEqual(Option.some(0n))
      const { offsets: seen } = yield* collect("s", "c")
      expect(seen).toEqual([1n, 2n])
    }).pipe(Effect.provide(serverSide)))

  it.effect("stores every N messages and at the marker, only forward", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(25) })
      yield* collect("s", "c", 10)
      const history = yield* (yield* MemoryOffsetStore).history
      expect(history.map((h) => h.offset)).toEqual([9n, 19n, 24n])
      // The marker is message 20 of a run of 20: one store serves both triggers.
      yield* send({ stream: "s", messages: tutorialMessages(20) })
      yield* collect("s", "c", 10)
      const after = yield* (yield* MemoryOffsetStore).history
      expect(after.map((h) => h.offset)).toEqual([9n, 19n, 24n, 34n, 44n])
    }).pipe(Effect.provide(memoryStore)))

  it.effect("two consumer names track independently", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(5) })
      yield* send({ stream: "s", messages: tutorialMessages(5) })
      const a1 = yield* collect("s", "a")
      const a2 = yield* collect("s", "a")
      const b1 = yield* collect("s", "b")
      expect(a1.offsets).toEqual(b1.offsets)
      expect(a2.offsets[0]! > a1.offsets.at(-1)!).toBe(true)
      const offsets = yield* OffsetStore
      expect(yield* offsets.query("a", "s")).toEqual(Option.some(a2.offsets.at(-1)!))
      expect(yield* offsets.query("b", "s")).toEqual(Option.some(b1.offsets.at(-1)!))
    }).pipe(Effect.provide(serverSide)))

  it.effect("waits for the marker when it has not been published yet", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: ["one", "two"] })
      const fiber = yield* Effect.fork(collect("s", "c"))
      yield* TestClock.adjust("1 minute")
      expect(fiber.unsafePoll()).toBeNull()
      yield* send({ stream: "s", messages: ["three", "marker", "after"] })
      const { bodies } = yield* Fiber.join(fiber)
      expect(bodies).toEqual(["one", "two", "three", "marker"])
    }).pipe(Effect.provide(serverSide)))

  it.effect("stores the last processed offset when processing fails", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(10) })
      const error = yield* receive({
        stream: "s",
        consumerName: "c",
        onMessage: (message) => bodyText(message) === "hello 4" ? Effect.fail("boom" as const) : Effect.void
      }).pipe(Effect.flip)
      expect(error).toBe("boom")
      // hello 0..3 were processed; hello 4 was not, so it is the next one to come.
      expect(yield* (yield* OffsetStore).query("c", "s")).toEqual(Option.some(3n))
    }).pipe(Effect.provide(memoryStore)))

  it.effect("stores the last processed offset when interrupted", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: ["a", "b", "c"] })
      const fiber = yield* Effect.fork(collect("s", "c"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      expect(yield* (yield* OffsetStore).query("c", "s")).toEqual(Option.some(2n))
    }).pipe(Effect.provide(memoryStore)))

  it.effect("fails with StreamNotFound for a stream that does not exist", () =>
    Effect.gen(function*() {
      const error = yield* collect("missing", "c").pipe(Effect.flip)
      expect(error._tag).toBe("StreamNotFound")
      expect(error.message).toContain("missing")
    }).pipe(Effect.provide(serverSide)))
})

describe("the in-memory broker", () => {
  it.effect("assigns offsets itself and gives tracking entries offsets too", () =>
    Effect.gen(function*() {
      const broker = yield* StreamBroker
      yield* send({ stream: "s", messages: ["a", "b"] })
      yield* broker.storeOffset("c", "s", 1n)
      yield* send({ stream: "s", messages: ["c"] })
      const messages = yield* (yield* MemoryBroker).messages("s")
      expect(messages.map((m) => m.offset)).toEqual([0n, 1n, 3n])
    }).pipe(Effect.provide(serverSide)))

  it.scoped("delivers as fast as the consumer pulls (backpressure)", () =>
    Effect.gen(function*() {
      const broker = yield* StreamBroker
      yield* send({ stream: "s", messages: tutorialMessages(100) })
      const messages = yield* broker.subscribe({ stream: "s", start: StartPosition.First() })
      const firstChunk = yield* messages.pipe(Stream.take(3), Stream.runCollect)
      expect(Chunk.toReadonlyArray(firstChunk).map((m) => m.offset)).toEqual([0n, 1n, 2n])
    }).pipe(Effect.provide(serverSide)))
})

describe("receive, a handler that returns Effect.void", () => {
  it.effect("messages it returns Effect.void for are not run but counted, the others run in order, a failure stops before its offset", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(40) })
      const ran: Array<bigint> = []
      const all: Array<bigint> = []
      // Only every fifth message has something to do; offset 32 fails.
      const onMessage = (message: StreamMessage) => {
        all.push(message.offset)
        if (message.offset % 5n !== 0n) return Effect.void
        return message.offset === 30n
          ? Effect.fail("boom at 30" as const)
          : Effect.sync(() => void ran.push(message.offset))
      }
      const failed = yield* Effect.flip(receive({ stream: "s", consumerName: "c", tracking: TrackingStrategy.Manual({ every: 3 }), onMessage }))
      expect(failed).toBe("boom at 30")
      expect(ran).toEqual([0n, 5n, 10n, 15n, 20n, 25n])
      expect(all).toEqual(Array.from({ length: 31 }, (_, i) => BigInt(i)))
      // Stored: the last message processed before the failure (29), and the next run starts at 30.
      const again: Array<bigint> = []
      const summary = yield* receive({
        stream: "s",
        consumerName: "c",
        tracking: TrackingStrategy.Manual({ every: 3 }),
        stop: { marker: isTutorialMarker },
        onMessage: (message) => message.offset % 2n === 0n ? Effect.void : Effect.sync(() => void again.push(message.offset))
      })
      expect(summary.firstOffset).toEqual(Option.some(30n))
      expect(summary.messages).toBe(10)
      expect(again).toEqual([31n, 33n, 35n, 37n, 39n])
    }).pipe(Effect.provide(memoryStore)))
})

