// consume: the consumer as a Stream of messages to commit, on the in-memory layers.
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Layer, Option, Stream, TestClock } from "effect"
import {
  isTutorialMarker,
  bodyText,
  consume,
  type ConsumeOptions,
  MemoryBroker,
  MemoryOffsetStore,
  OffsetStore,
  send,
  StreamBroker,
  TrackingStrategy,
  tutorialMessages
} from "../../src/StreamOffsets.ts"

const memory = Layer.merge(StreamBroker.layerMemory({ chunkSize: 4 }), OffsetStore.layerMemory)

const stored = Effect.flatMap(OffsetStore, (store) => store.query("c", "s"))
const history = Effect.flatMap(MemoryOffsetStore, (m) => m.history).pipe(Effect.map((h) => h.map((e) => e.offset)))
/** The tutorial's stream: its last message is the marker (unless the test says otherwise). */
const options = (more: Partial<ConsumeOptions> = {}): ConsumeOptions => ({
  stream: "s",
  consumerName: "c",
  ...more,
  stop: { marker: isTutorialMarker, ...more.stop }
})
const bodies = (n: number) => Array.from({ length: n }, (_, i) => `m${i}`)

describe("consume", () => {
  it.effect("emits from the first message to the marker; committing each batch stores the marker's offset at the end", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(25) })
      const batches = yield* consume(options({ tracking: TrackingStrategy.None() })).pipe(
        Stream.groupedWithin(10, "1 second"),
        Stream.mapEffect((batch) => Effect.as(Chunk.unsafeLast(batch).commit, Chunk.toArray(batch).map(bodyText))),
        Stream.runCollect
      )
      const seen = Chunk.toArray(batches).flat()
      expect(seen).toEqual([...Array.from({ length: 24 }, (_, i) => `hello ${i}`), "marker"])
      expect(yield* stored).toEqual(Option.some(24n))
      // The strategy is None: stores only when the stream ends. groupedWithin reads ahead, so the
      // stream may end before the last batch is committed; that commit then stores at once.
      expect((yield* history).at(-1)).toBe(24n)
    }).pipe(Effect.provide(memory)))

  it.effect("resumes after the last committed message: what was delivered but not committed comes again", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(20) })
      const noMarker = options({ stop: { marker: false } })
      // Takes 6, commits the 4th only, then the downstream ends the stream.
      const first = yield* consume(noMarker).pipe(
        Stream.take(6),
        Stream.mapEffect((m) => Effect.as(m.index === 3 ? m.commit : Effect.void, bodyText(m))),
        Stream.runCollect
      )
      expect(Chunk.toArray(first)).toEqual(bodies(6))
      expect(yield* stored).toEqual(Option.some(3n))
      const second = yield* consume(noMarker).pipe(Stream.take(3), Stream.map(bodyText), Stream.runCollect)
      expect(Chunk.toArray(second)).toEqual(["m4", "m5", "m6"])
    }).pipe(Effect.provide(memory)))

  it.effect("stores by the tracking strategy as messages are committed, only forward", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(25) })
      yield* consume(options({ tracking: TrackingStrategy.Manual({ every: 10 }), stop: { count: 25 } })).pipe(
        Stream.runForEach((m) => m.commit)
      )
      expect(yield* history).toEqual([9n, 19n, 24n])
    }).pipe(Effect.provide(memory)))

  it.effect("committing out of order never moves the offset back", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(8) })
      const messages = yield* consume(options({ stop: { count: 8 } })).pipe(Stream.runCollect)
      const all = Chunk.toArray(messages)
      yield* all[6]!.commit
      yield* all[2]!.commit
      // The stream has ended: a commit after that stores at once.
      expect(yield* stored).toEqual(Option.some(6n))
    }).pipe(Effect.provide(memory)))

  it.effect("a failure downstream ends the stream; the last committed offset is stored", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(10) })
      const exit = yield* consume(options({ stop: { marker: false } })).pipe(
        Stream.mapEffect((m): Effect.Effect<void, unknown> => m.index === 5 ? Effect.fail("boom") : m.commit),
        Stream.runDrain,
        Effect.exit
      )
      expect(exit._tag).toBe("Failure")
      expect(yield* stored).toEqual(Option.some(4n))
    }).pipe(Effect.provide(memory)))

  it.effect("a lost connection: it subscribes again after the last message delivered, nothing twice", () =>
    Effect.gen(function*() {
      const broker = yield* MemoryBroker
      yield* send({ stream: "s", messages: bodies(10) })
      const seen: Array<string> = []
      const fiber = yield* consume(options({ stop: { count: 20 } })).pipe(
        Stream.runForEach((m) => Effect.zipRight(Effect.sync(() => seen.push(bodyText(m))), m.commit)),
        Effect.fork
      )
      yield* TestClock.adjust("10 millis")
      expect(seen).toEqual(bodies(10))
      yield* broker.loseConnection
      yield* send({ stream: "s", messages: bodies(10).map((b) => `${b}'`) })
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      expect(seen).toEqual([...bodies(10), ...bodies(10).map((b) => `${b}'`)])
    }).pipe(Effect.provide(memory)))

  it.effect("an idle timeout ends the stream; so does the signal, with the last commit stored", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(3) })
      const idle = yield* consume(options({ stop: { marker: false, idleTimeout: "5 seconds" } })).pipe(
        Stream.tap((m) => m.commit),
        Stream.runCollect,
        Effect.fork
      )
      yield* TestClock.adjust("5 seconds")
      expect(Chunk.size(yield* Fiber.join(idle))).toBe(3)
      expect(yield* stored).toEqual(Option.some(2n))

      yield* send({ stream: "s", messages: bodies(2) })
      const signal = yield* Deferred.make<void>()
      const signalled = yield* consume(options({ stop: { marker: false, signal: Deferred.await(signal) } })).pipe(
        Stream.tap((m) => m.commit),
        Stream.runCollect,
        Effect.fork
      )
      yield* TestClock.adjust("10 millis")
      yield* Deferred.succeed(signal, undefined)
      expect(Chunk.toArray(yield* Fiber.join(signalled)).map(bodyText)).toEqual(["m0", "m1"])
      expect(yield* stored).toEqual(Option.some(4n))
    }).pipe(Effect.provide(memory)))

  it.effect("refuses bad options before it subscribes, as receive does", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(1) })
      const error = yield* consume(options({ stop: { count: 0 } })).pipe(Stream.runDrain, Effect.flip)
      expect(error._tag).toBe("InvalidArgument")
      const missing = yield* consume({ stream: "nope", consumerName: "c" }).pipe(Stream.runDrain, Effect.flip)
      expect(missing._tag).toBe("StreamNotFound")
    }).pipe(Effect.provide(memory)))
})
