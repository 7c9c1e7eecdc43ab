// Beyond the tutorial: tracking strategies, start positions, stop conditions, single active
// consumer, the KeyValueStore offset store and inspection, all on the in-memory layers.
import { describe, expect, it } from "@effect/vitest"
import { KeyValueStore } from "@effect/platform"
import { Deferred, Effect, Fiber, Layer, Metric, Option, TestClock } from "effect"
import {
  isTutorialMarker,
  bodyText,
  inspectOffset,
  MemoryBroker,
  MemoryOffsetStore,
  OffsetStore,
  offsetsStored,
  receive,
  type ReceiveOptions,
  send,
  StartPosition,
  StreamBroker,
  TrackingStrategy,
  tutorialMessages
} from "../../src/StreamOffsets.ts"

const memory = Layer.merge(StreamBroker.layerMemory({ chunkSize: 4 }), OffsetStore.layerMemory)
const serverSide = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerMemory({ chunkSize: 4 })))

const history = Effect.flatMap(MemoryOffsetStore, (m) => m.history).pipe(
  Effect.map((h) => h.map((entry) => entry.offset))
)

const consume = (options: Partial<ReceiveOptions> & { readonly consumerName?: string } = {}) =>
  Effect.gen(function*() {
    const bodies: Array<string> = []
    const summary = yield* receive({
      stream: "s",
      consumerName: "c",
      ...options,
      // The tutorial's stream: its last message is the marker.
      stop: { marker: isTutorialMarker, ...options.stop },
      onMessage: (message) => Effect.sync(() => void bodies.push(bodyText(message)))
    })
    return { summary, bodies }
  })

const bodies = (n: number, prefix = "m") => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

describe("tracking strategies", () => {
  it.effect("auto stores after N messages", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(12) })
      yield* consume({ tracking: TrackingStrategy.Auto({ messages: 5, interval: "1 hour" }) })
      expect(yield* history).toEqual([4n, 9n, 11n])
    }).pipe(Effect.provide(memory)))

  it.effect("auto stores at least every interval while messages trickle in", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: ["a", "b"] })
      const signal = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(consume({
        tracking: TrackingStrategy.Auto({ messages: 10_000, interval: "5 seconds" }),
        stop: { marker: false, signal: Deferred.await(signal) }
      }))
      yield* TestClock.adjust("4 seconds")
      expect(yield* history).toEqual([])
      yield* TestClock.adjust("1 second")
      expect(yield* history).toEqual([1n])
      yield* send({ stream: "s", messages: ["c"] })
      yield* TestClock.adjust("5 seconds")
      expect(yield* history).toEqual([1n, 2n])
      // Nothing new: the timer does not store the same offset again.
      yield* TestClock.adjust("30 seconds")
      expect(yield* history).toEqual([1n, 2n])
      yield* Deferred.succeed(signal, undefined)
      const { summary } = yield* Fiber.join(fiber)
      expect(summary.stoppedBy).toBe("signal")
      expect(summary.messages).toBe(3)
    }).pipe(Effect.provide(memory)))

  it.effect("none stores only at the stop", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(30) })
      yield* consume({ tracking: TrackingStrategy.None() })
      expect(yield* history).toEqual([29n])
    }).pipe(Effect.provide(memory)))

  it.effect("stores only move forward, also when the stream is replayed from the start", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(10) })
      yield* consume({ tracking: TrackingStrategy.Manual({ every: 3 }) })
      yield* consume({ tracking: TrackingStrategy.Manual({ every: 3 }), ignoreStoredOffset: true })
      expect(yield* history).toEqual([2n, 5n, 8n, 9n])
    }).pipe(Effect.provide(memory)))

  it.effect("the final store is confirmed by reading it back", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(3) })
      const { summary } = yield* consume()
      expect(summary.storedOffset).toEqual(Option.some(2n))
      expect(summary.storeConfirmed).toBe(true)
    }).pipe(Effect.provide(serverSide)))

  it.effect("rejects a non-positive tracking count", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: ["a"] })
      const error = yield* consume({ tracking: TrackingStrategy.Manual({ every: 0 }) }).pipe(Effect.flip)
      expect(error._tag).toBe("InvalidArgument")
    }).pipe(Effect.provide(memory)))
})

describe("start positions", () => {
  const setup = Effect.gen(function*() {
    yield* send({ stream: "s", messages: bodies(6) }) // chunks [0..3] [4..5]
  })

  it.effect("last starts at the last chunk that holds messages", () =>
    Effect.gen(function*() {
      yield* setup
      const { bodies: seen } = yield* consume({ start: StartPosition.Last(), stop: { marker: false, untilEnd: true } })
      expect(seen).toEqual(["m4", "m5"])
    }).pipe(Effect.provide(memory)))

  it.effect("next waits for the next message", () =>
    Effect.gen(function*() {
      yield* setup
      const fiber = yield* Effect.fork(consume({ start: StartPosition.Next(), stop: { count: 1 } }))
      yield* TestClock.adjust("1 second")
      yield* send({ stream: "s", messages: ["new"] })
      expect((yield* Fiber.join(fiber)).bodies).toEqual(["new"])
    }).pipe(Effect.provide(memory)))

  it.effect("an absolute offset inside a chunk drops the messages before it", () =>
    Effect.gen(function*() {
      yield* setup
      const { bodies: seen } = yield* consume({ start: StartPosition.Offset({ offset: 2n }), stop: { count: 2 } })
      expect(seen).toEqual(["m2", "m3"])
    }).pipe(Effect.provide(memory)))

  it.effect("a timestamp starts at the first chunk written at or after it", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(4, "old") })
      yield* TestClock.adjust("1 minute")
      const now = new Date(yield* TestClock.currentTimeMillis)
      yield* send({ stream: "s", messages: bodies(2, "new") })
      const { bodies: seen } = yield* consume({ start: StartPosition.Timestamp({ date: now }), stop: { count: 2 } })
      expect(seen).toEqual(["new0", "new1"])
    }).pipe(Effect.provide(memory)))

  it.effect("a stored offset wins over the start position, unless it is ignored", () =>
    Effect.gen(function*() {
      yield* setup
      yield* (yield* OffsetStore).store("c", "s", 3n)
      const resumed = yield* consume({ start: StartPosition.First(), stop: { count: 1 } })
      expect(resumed.bodies).toEqual(["m4"])
      expect(resumed.summary.resumed).toBe(true)
      const ignored = yield* consume({ start: StartPosition.First(), ignoreStoredOffset: true, stop: { count: 1 } })
      expect(ignored.bodies).toEqual(["m0"])
    }).pipe(Effect.provide(memory)))
})

describe("stop conditions", () => {
  it.effect("a message count", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(10) })
      const { bodies: seen, summary } = yield* consume({ stop: { count: 3 } })
      expect(seen).toEqual(["m0", "m1", "m2"])
      expect(summary.stoppedBy).toBe("count")
      expect(summary.storedOffset).toEqual(Option.some(2n))
    }).pipe(Effect.provide(memory)))

  it.effect("until the end as it was at the start, even with tracking entries at the tail", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(5) })
      yield* (yield* StreamBroker).storeOffset("other", "s", 1n) // a tracking entry after the last message
      const { bodies: seen, summary } = yield* consume({ stop: { marker: false, untilEnd: true } })
      expect(seen).toEqual(bodies(5))
      expect(summary.stoppedBy).toBe("end")
    }).pipe(Effect.provide(serverSide)))

  it.effect("until the end, resumed after the last message, stops at once", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(5) })
      yield* consume({ stop: { marker: false, untilEnd: true } })
      const { summary } = yield* consume({ stop: { marker: false, untilEnd: true } })
      expect(summary.messages).toBe(0)
      expect(summary.stoppedBy).toBe("end")
    }).pipe(Effect.provide(serverSide)))

  it.effect("until the end, starting at the last message itself, processes exactly that message", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(5) })
      const { bodies: seen, summary } = yield* consume({ start: StartPosition.Offset({ offset: 4n }), stop: { marker: false, untilEnd: true } })
      expect(seen).toEqual(["m4"])
      expect(summary.stoppedBy).toBe("end")
    }).pipe(Effect.provide(memory)))

  it.effect("until the end of an empty stream stops at once", () =>
    Effect.gen(function*() {
      yield* (yield* StreamBroker).declareStream("s", {})
      const { summary } = yield* consume({ stop: { marker: false, untilEnd: true } })
      expect(summary.messages).toBe(0)
      expect(summary.stoppedBy).toBe("end")
    }).pipe(Effect.provide(memory)))

  it.effect("an idle timeout", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(2) })
      const fiber = yield* Effect.fork(consume({ stop: { marker: false, idleTimeout: "10 seconds" } }))
      yield* TestClock.adjust("9 seconds")
      yield* send({ stream: "s", messages: ["late"] })
      yield* TestClock.adjust("9 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const { bodies: seen, summary } = yield* Fiber.join(fiber)
      expect(seen).toEqual(["m0", "m1", "late"])
      expect(summary.stoppedBy).toBe("idle")
      expect(yield* history).toEqual([2n])
    }).pipe(Effect.provide(memory)))

  it.effect("with no stop condition it runs until signalled, then stores and summarises", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(3) })
      const signal = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(consume({ stop: { marker: false, signal: Deferred.await(signal) } }))
      yield* TestClock.adjust("1 hour")
      expect(fiber.unsafePoll()).toBeNull()
      yield* Deferred.succeed(signal, undefined)
      const { summary } = yield* Fiber.join(fiber)
      expect(summary.messages).toBe(3)
      expect(summary.stoppedBy).toBe("signal")
      expect(yield* history).toEqual([2n])
    }).pipe(Effect.provide(memory)))
})

describe("single active consumer", () => {
  it.effect("one consumer is active; the next takes over after the stored offset, nothing twice", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(5, "a") })
      const stopA = yield* Deferred.make<void>()
      const a = yield* Effect.fork(consume({ singleActive: true, stop: { marker: false, signal: Deferred.await(stopA) } }))
      yield* TestClock.adjust("1 second")
      const b = yield* Effect.fork(consume({ singleActive: true, stop: { marker: false, count: 5 } }))
      yield* TestClock.adjust("1 second")
      yield* send({ stream: "s", messages: bodies(3, "b") })
      yield* TestClock.adjust("1 second")
      // B is idle while A is active.
      expect(b.unsafePoll()).toBeNull()
      yield* Deferred.succeed(stopA, undefined)
      const first = yield* Fiber.join(a)
      expect(first.bodies).toEqual([...bodies(5, "a"), ...bodies(3, "b")])
      yield* send({ stream: "s", messages: bodies(5, "c") })
      const second = yield* Fiber.join(b)
      expect(second.bodies).toEqual(bodies(5, "c"))
      expect(second.summary.resumed).toBe(true)
    }).pipe(Effect.provide(serverSide)))
})

describe("single active consumer: a member that lost its connection", () => {
  // A stores only when it stops; B stores after every message (`bStoresAsItGoes`) or only when it stops.
  const loseA = (bStoresAsItGoes: boolean) =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const offsets = yield* OffsetStore
      yield* send({ stream: "s", messages: bodies(10, "a") })
      const stopA = yield* Deferred.make<void>()
      const stopB = yield* Deferred.make<void>()
      const a = yield* Effect.fork(consume({
        singleActive: true,
        tracking: TrackingStrategy.Manual({ every: 1000 }),
        stop: { marker: false, signal: Deferred.await(stopA) }
      }))
      yield* TestClock.adjust("1 second")
      const b = yield* Effect.fork(consume({
        singleActive: true,
        tracking: bStoresAsItGoes ? TrackingStrategy.Auto({ messages: 1, interval: "1 hour" }) : TrackingStrategy.Manual({ every: 1000 }),
        stop: { marker: false, signal: Deferred.await(stopB) }
      }))
      yield* TestClock.adjust("1 second")
      expect(Option.isNone(yield* offsets.query("c", "s"))).toBe(true) // A processed a0..a9, stored nothing
      // A's connection drops: B is activated (nothing stored: from the first message).
      yield* memory.loseMember("s", "c", 0)
      yield* TestClock.adjust("1 second")
      yield* send({ stream: "s", messages: bodies(5, "b") })
      yield* TestClock.adjust("1 second")
      // (The store entries take offsets too: b4's offset is past 14.)
      const last = (yield* memory.messages("s")).at(-1)!.offset
      const storedBeforeAStops = yield* offsets.query("c", "s")
      // A, back in the group but not active, stops: it must not store offset 9 (over B's, if any).
      yield* Deferred.succeed(stopA, undefined)
      const first = yield* Fiber.join(a)
      expect(first.bodies).toEqual(bodies(10, "a"))
      expect(yield* offsets.query("c", "s")).toEqual(storedBeforeAStops)
      yield* Deferred.succeed(stopB, undefined)
      const second = yield* Fiber.join(b)
      expect(second.bodies).toEqual([...bodies(10, "a"), ...bodies(5, "b")])
      expect(yield* offsets.query("c", "s")).toEqual(Option.some(last))
      return { storedBeforeAStops, last, summary: first.summary }
    }).pipe(Effect.provide(serverSide))

  it.effect("stores nothing when it stops out of turn; with the new active member's store past what it processed, that is no failure", () =>
    Effect.gen(function*() {
      const { last, storedBeforeAStops, summary } = yield* loseA(true)
      expect(storedBeforeAStops).toEqual(Option.some(last))
      // B stored past a9: what A processed will not be processed again on its account.
      expect(summary.storeConfirmed).toBe(true)
      expect(Option.isNone(summary.storeProblem)).toBe(true)
    }))

  it.effect("stores nothing when it stops out of turn; with nothing stored past what it processed, its summary says why", () =>
    Effect.gen(function*() {
      const { storedBeforeAStops, summary } = yield* loseA(false)
      expect(Option.isNone(storedBeforeAStops)).toBe(true)
      expect(summary.storeConfirmed).toBe(false)
      expect(Option.getOrElse(summary.storeProblem, () => "")).toContain("no longer the active one")
    }))
})

describe("an offset store of your own (OffsetStore.make)", () => {
  it.effect("a store that shows only later: the final store waits until it reads back, then says it is confirmed", () =>
    Effect.gen(function*() {
      const table = new Map<string, bigint>()
      // A write the backend applies a second later (as a broker applies a store when it can).
      const late = OffsetStore.make({
        query: (consumerName, stream) => Effect.sync(() => Option.fromNullable(table.get(`${stream}/${consumerName}`))),
        store: (consumerName, stream, offset) =>
          Effect.asVoid(Effect.forkDaemon(Effect.delay(Effect.sync(() => void table.set(`${stream}/${consumerName}`, offset)), "1 second")))
      })
      const fiber = yield* Effect.fork(
        Effect.zipRight(send({ stream: "s", messages: tutorialMessages(5) }), consume()).pipe(
          Effect.provide(Layer.merge(StreamBroker.layerMemory({ chunkSize: 4 }), Layer.succeed(OffsetStore, late)))
        )
      )
      yield* TestClock.adjust("500 millis")
      expect(fiber.unsafePoll()).toBeNull() // processed, stored, not read back yet
      yield* TestClock.adjust("600 millis")
      const { summary } = yield* Fiber.join(fiber)
      expect(summary.storeConfirmed).toBe(true)
      expect(table.get("s/c")).toBe(4n)
    }))

  it.effect("resumes from what it stored; its stores count in offsetsStored", () =>
    Effect.gen(function*() {
      const table = new Map<string, bigint>()
      const own = OffsetStore.make({
        query: (consumerName, stream) => Effect.sync(() => Option.fromNullable(table.get(`${stream}/${consumerName}`))),
        store: (consumerName, stream, offset) => Effect.sync(() => void table.set(`${stream}/${consumerName}`, offset))
      })
      const before = (yield* Metric.value(offsetsStored.pipe(Metric.tagged("stream", "s"), Metric.tagged("consumer", "c")))).count
      const program = Effect.gen(function*() {
        yield* send({ stream: "s", messages: tutorialMessages(5) })
        const first = yield* consume()
        yield* send({ stream: "s", messages: tutorialMessages(5) })
        const second = yield* consume()
        return { first, second }
      })
      const { first, second } = yield* program.pipe(Effect.provide(Layer.merge(StreamBroker.layerMemory({ chunkSize: 4 }), Layer.succeed(OffsetStore, own))))
      const tutorial = ["hello 0", "hello 1", "hello 2", "hello 3", "marker"]
      expect(first.bodies).toEqual(tutorial)
      expect(second.bodies).toEqual(tutorial)
      expect(table.get("s/c")).toBe(9n)
      expect((yield* Metric.value(offsetsStored.pipe(Metric.tagged("stream", "s"), Metric.tagged("consumer", "c")))).count - before).toBeGreaterThan(0)
    }))

  it.effect("a failing store is an OffsetStoreError naming the operation, consumer and stream", () =>
    Effect.gen(function*() {
      const own = OffsetStore.make({
        query: () => Effect.fail("the table is locked"),
        store: () => Effect.void
      })
      const error = yield* own.query("c", "s").pipe(Effect.flip)
      expect(error._tag).toBe("OffsetStoreError")
      expect(error.operation).toBe("query")
      expect(error.consumerName).toBe("c")
      expect(error.stream).toBe("s")
    }))
})

describe("the KeyValueStore offset store", () => {
  it.effect("resumes like the server-side store", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: tutorialMessages(5) })
      yield* send({ stream: "s", messages: tutorialMessages(5) })
      const first = yield* consume()
      const second = yield* consume()
      expect(first.bodies.at(-1)).toBe("marker")
      expect(second.bodies).toEqual(["hello 0", "hello 1", "hello 2", "hello 3", "marker"])
      const kv = yield* KeyValueStore.KeyValueStore
      expect(yield* kv.size).toBe(1)
    }).pipe(
      Effect.provide(Layer.mergeAll(
        StreamBroker.layerMemory(),
        OffsetStore.layerKeyValueStore.pipe(Layer.provideMerge(KeyValueStore.layerMemory))
      ))
    ))

  it.effect("a stored value that is not an offset is an OffsetStoreError", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      yield* kv.set("offset-s-c", "garbage")
      const error = yield* (yield* OffsetStore).query("c", "s").pipe(Effect.flip)
      expect(error._tag).toBe("OffsetStoreError")
      expect(error.message).toContain("not an offset")
    }).pipe(Effect.provide(OffsetStore.layerKeyValueStore.pipe(Layer.provideMerge(KeyValueStore.layerMemory)))))
})

describe("inspectOffset", () => {
  it.effect("reports the stored offset, the bounds and the lag", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(10) })
      const before = yield* inspectOffset("s", "c")
      expect(before.storedOffset).toEqual(Option.none())
      expect(before.firstOffset).toEqual(Option.some(0n))
      expect(before.lastOffset).toEqual(Option.some(9n))
      expect(before.lag).toEqual(Option.some(10n))
      yield* consume({ stop: { count: 4 } })
      const after = yield* inspectOffset("s", "c")
      expect(after.storedOffset).toEqual(Option.some(3n))
      expect(after.lag).toEqual(Option.some(6n))
    }).pipe(Effect.provide(serverSide)))
})

describe("a lost connection", () => {
  it.effect("receive subscribes again and resumes after the last message processed: nothing lost, nothing twice", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(8) })
      const memory = yield* MemoryBroker
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(receive({
        stream: "s",
        consumerName: "c",
        stop: { marker: false, count: 14 },
        tracking: TrackingStrategy.None(),
        onMessage: (message) => Effect.sync(() => void seen.push(bodyText(message)))
      }))
      yield* TestClock.adjust("1 second")
      expect(seen).toEqual(bodies(8))
      yield* memory.loseConnection
      yield* send({ stream: "s", messages: bodies(6, "after") })
      yield* TestClock.adjust("1 second") // the reconnect backoff
      const summary = yield* Fiber.join(fiber)
      expect(seen).toEqual([...bodies(8), ...bodies(6, "after")])
      expect(summary.messages).toBe(14)
      expect(summary.stoppedBy).toBe("count")
    }).pipe(Effect.provide(serverSide)))
})

describe("a stop signal while reconnecting", () => {
  it.effect("ends the backoff: summary, offset stored", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(3) })
      const memory = yield* MemoryBroker
      const signal = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(consume({ stop: { marker: false, signal: Deferred.await(signal) } }))
      yield* TestClock.adjust("1 second")
      // Lose the connection repeatedly so that the consumer sits in a backoff, then signal.
      yield* memory.loseConnection
      yield* Deferred.succeed(signal, undefined)
      const { summary } = yield* Fiber.join(fiber)
      expect(summary.stoppedBy).toBe("signal")
      expect(summary.messages).toBe(3)
      expect(yield* history).toEqual([2n])
    }).pipe(Effect.provide(memory)))
})

describe("receive refuses bad input before it subscribes", () => {
  it.effect("a zero auto interval (it would store in a loop that never ends), a zero idle timeout, a name the broker ignores", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: ["a"] })
      const refused = (options: Partial<ReceiveOptions>) =>
        receive({ stream: "s", consumerName: "c", ...options }).pipe(Effect.flip, Effect.map((e) => e.message))
      expect(yield* refused({ tracking: TrackingStrategy.Auto({ messages: 10, interval: 0 }) })).toBe(
        "the auto tracking interval must be longer than 0"
      )
      expect(yield* refused({ stop: { idleTimeout: "0 millis" } })).toBe("the idle timeout must be longer than 0")
      expect(yield* refused({ consumerName: "c".repeat(256) })).toBe("the consumer name must be 1 to 255 bytes long, got 256 bytes")
      expect(yield* history).toEqual([])
    }).pipe(Effect.provide(memory)))
})
