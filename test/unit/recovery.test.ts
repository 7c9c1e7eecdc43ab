// The connection supervisor and the one retry policy, on the memory broker with TestClock: a broker
// that goes away and comes back, one that stays away too long, wrong credentials, a stop signal
// during an outage, and a named producer across an outage.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, Option, Stream, TestClock } from "effect"
import {
  bodyText,
  type MemoryBrokerOptions,
  MemoryBroker,
  messagesConfirmed,
  OffsetStore,
  Producer,
  receive,
  retryFor,
  send,
  type StopConditions,
  StreamBroker,
  TrackingStrategy
} from "../../src/StreamOffsets.ts"

const layers = (options: MemoryBrokerOptions = {}) =>
  OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerMemory({ chunkSize: 4, ...options })))

/** The connection states as they change, as short labels. */
const watchStates = Effect.gen(function*() {
  const states: Array<string> = []
  yield* (yield* StreamBroker).connectionChanges.pipe(
    Stream.runForEach((state) =>
      Effect.sync(() => void states.push(state._tag === "Connecting" ? `Connecting ${state.attempt}` : state._tag))
    ),
    Effect.fork
  )
  return states
})

const bodies = (n: number, prefix = "m") => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

/** Receives on "s" as "c" into `seen`, in a fiber. */
const receiving = (seen: Array<string>, stop: StopConditions) =>
  Effect.fork(receive({
    stream: "s",
    consumerName: "c",
    stop,
    tracking: TrackingStrategy.None(),
    onMessage: (message) => Effect.sync(() => void seen.push(bodyText(message)))
  }))

describe("a broker that goes away and comes back", () => {
  it.effect("receive waits it out and resumes after the last message processed; the state shows every step", () =>
    Effect.gen(function*() {
      const broker = yield* StreamBroker
      const memory = yield* MemoryBroker
      const states = yield* watchStates
      yield* send({ stream: "s", messages: bodies(8) })
      const seen: Array<string> = []
      const fiber = yield* receiving(seen, { marker: false, count: 14 })
      yield* TestClock.adjust("1 second")
      expect(seen).toEqual(bodies(8))

      yield* memory.down()
      yield* TestClock.adjust("30 seconds")
      const during = yield* broker.connectionState
      expect(during._tag).toBe("Connecting")
      expect(during._tag === "Connecting" && during.attempt).toBeGreaterThan(5)
      expect(during._tag === "Connecting" && during.lastError).toContain("ECONNREFUSED")

      yield* memory.up
      yield* TestClock.adjust("10 seconds")
      expect((yield* broker.connectionState)._tag).toBe("Connected")
      yield* send({ stream: "s", messages: bodies(6, "after") })
      yield* TestClock.adjust("1 second")
      const summary = yield* Fiber.join(fiber)
      expect(seen).toEqual([...bodies(8), ...bodies(6, "after")])
      expect(summary.stoppedBy).toBe("count")
      expect(states[0]).toBe("Connected")
      expect(states).toContain("Connecting 1")
      expect(states).toContain("Connecting 5")
      expect(states.at(-1)).toBe("Connected")
    }).pipe(Effect.provide(layers())))

  it.effect("a named producer finishes across it: the stream holds every message exactly once", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const fiber = yield* Effect.fork(send({ stream: "s", messages: bodies(10), producerName: "p" }))
      yield* TestClock.adjust("100 millis")
      expect(fiber.unsafePoll()).toBeNull() // still waiting for the confirm of m5
      yield* memory.down()
      yield* TestClock.adjust("20 seconds")
      yield* memory.up
      yield* TestClock.adjust("10 seconds")
      const summary = yield* Fiber.join(fiber)
      expect(summary.confirmed).toBe(summary.sent)
      const stored = (yield* memory.messages("s")).map(bodyText)
      expect(stored).toEqual(bodies(10))
    }).pipe(Effect.provide(
      // The broker never confirms m5 the first time: the send is still waiting when the broker goes.
      layers({ dropConfirm: (() => {
        let dropped = false
        return (body: Uint8Array) => !dropped && new TextDecoder().decode(body) === "m5" && (dropped = true)
      })() })
    )))
})

// A producer's metrics are tagged with its stream and name.
const confirmedOf = (stream: string, producer: string) =>
  messagesConfirmed.pipe(Metric.tagged("stream", stream), Metric.tagged("producer", producer))

describe("a named producer whose confirms were lost", () => {
  it.effect("asks the broker what it has and sends none of it again; those count as confirmed", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const before = (yield* Metric.value(confirmedOf("s", "p"))).count
      // p3 and p4 are stored but their confirms never come: the session ends at the confirm timeout
      // and the next one finds them in the stream.
      const fiber = yield* Effect.fork(send({ stream: "s", messages: bodies(10, "p"), producerName: "p" }))
      yield* TestClock.adjust("2 minutes")
      const sent = yield* Fiber.join(fiber)
      expect(sent).toMatchObject({ sent: 10, confirmed: 10 })
      expect((yield* memory.messages("s")).map(bodyText)).toEqual(bodies(10, "p"))
      expect(yield* memory.duplicates("s")).toBe(0)
      expect((yield* Metric.value(confirmedOf("s", "p"))).count - before).toBe(10)
    }).pipe(Effect.provide(layers({
      dropConfirm: (body) => ["p3", "p4"].includes(new TextDecoder().decode(body))
    }))))

  it.effect("with sub-entry batches, every message counts as confirmed, not every batch", () =>
    Effect.gen(function*() {
      const before = (yield* Metric.value(confirmedOf("s", "p"))).count
      const sent = yield* send({ stream: "s", messages: bodies(95), producerName: "p", subEntrySize: 10 })
      expect(sent).toMatchObject({ sent: 95, confirmed: 95 })
      expect((yield* Metric.value(confirmedOf("s", "p"))).count - before).toBe(95)
    }).pipe(Effect.provide(layers())))
})

describe("a stream without a leader for a while (code 6: a cluster without a majority)", () => {
  it.effect("a named producer and a receive wait for a leader under the policy, then finish: each message exactly once", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      yield* send({ stream: "s", messages: bodies(8) })
      const seen: Array<string> = []
      const consumer = yield* receiving(seen, { marker: false, count: 23 })
      const producer = yield* Effect.fork(send({ stream: "s", messages: bodies(10, "p"), producerName: "p" }))
      yield* TestClock.adjust("100 millis")
      expect(fiber(producer)).toBeNull() // still waiting for the confirm of p5
      yield* memory.loseLeader("s")
      yield* TestClock.adjust("60 seconds")
      // A minute without a leader: both still waiting (the policy allows two minutes), nothing failed.
      expect(fiber(producer)).toBeNull()
      expect(fiber(consumer)).toBeNull()
      yield* memory.electLeader("s")
      yield* TestClock.adjust("10 seconds")
      const sent = yield* Fiber.join(producer)
      expect(sent.confirmed).toBe(sent.sent)
      yield* send({ stream: "s", messages: bodies(5, "q") })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(consumer)
      const all = [...bodies(8), ...bodies(10, "p"), ...bodies(5, "q")]
      expect((yield* memory.messages("s")).map(bodyText)).toEqual(all)
      expect(seen).toEqual(all)
    }).pipe(Effect.provide(
      layers({ dropConfirm: (() => {
        let dropped = false
        return (body: Uint8Array) => !dropped && new TextDecoder().decode(body) === "p5" && (dropped = true)
      })() })
    )))

  it.effect("one longer than the policy: the named producer fails with the broker's code 6 and says it gave up", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      yield* send({ stream: "s", messages: bodies(2) })
      yield* memory.loseLeader("s")
      const producer = yield* Effect.fork(Effect.either(send({ stream: "s", messages: bodies(3, "p"), producerName: "p" })))
      yield* TestClock.adjust("5 minutes")
      const result = yield* Fiber.join(producer)
      expect(result._tag).toBe("Left")
      expect(result._tag === "Left" && result.left.message).toMatch(/stream not available \(code 6\)/)
    }).pipe(Effect.provide(layers({ retry: retryFor("20 seconds") }))))
})

const fiber = <A, E>(f: Fiber.RuntimeFiber<A, E>) => f.unsafePoll()

describe("outages far apart, with nothing happening in between", () => {
  // The policy bounds each outage (20 s here), not the time since the first one: a consumer at the
  // end of a quiet stream and an idle producer see no message between two outages a minute apart.
  const twoOutages = Effect.gen(function*() {
    const memory = yield* MemoryBroker
    for (let i = 0; i < 2; i++) {
      yield* memory.down()
      yield* TestClock.adjust("15 seconds")
      yield* memory.up
      yield* TestClock.adjust("60 seconds")
    }
  })

  it.effect("a consumer at the end of a quiet stream survives both, then reads what comes", () =>
    Effect.gen(function*() {
      yield* send({ stream: "s", messages: bodies(4) })
      const seen: Array<string> = []
      const consumer = yield* receiving(seen, { marker: false, count: 7 })
      yield* TestClock.adjust("1 second")
      yield* twoOutages
      expect(fiber(consumer)).toBeNull()
      yield* send({ stream: "s", messages: bodies(3, "late") })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(consumer)
      expect(seen).toEqual([...bodies(4), ...bodies(3, "late")])
    }).pipe(Effect.provide(layers({ retry: retryFor("20 seconds") }))))

  it.effect("an idle named Producer survives both, then publishes", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* send({ stream: "s", messages: [] })
      const producer = yield* Producer.make({ stream: "s", name: "p" })
      yield* producer.publish("before")
      yield* twoOutages
      const published = yield* producer.publish("after")
      expect(published.publishingId).toBe(2n)
      const memory = yield* MemoryBroker
      expect((yield* memory.messages("s")).map(bodyText)).toEqual(["before", "after"])
    })).pipe(Effect.provide(layers({ retry: retryFor("20 seconds") }))))
})

describe("a broker that stays away longer than the policy", () => {
  it.effect("receive fails with a typed error that says it gave up; the state is Disconnected", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const states = yield* watchStates
      yield* send({ stream: "s", messages: bodies(3) })
      const fiber = yield* Effect.fork(Effect.flip(receiving([], { marker: false }).pipe(Effect.flatMap(Fiber.join))))
      yield* TestClock.adjust("1 second")
      yield* memory.down()
      for (let i = 0; i < 12; i++) yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("BrokerError")
      expect(error.message).toContain("gave up after")
      // (The final store that follows starts over, so the state need not stay Disconnected.)
      expect(states).toContain("Disconnected")
    }).pipe(Effect.provide(layers({ retry: retryFor("10 seconds") }))))

  it.effect("wrong credentials are never retried: the first attempt fails for good", () =>
    Effect.gen(function*() {
      const broker = yield* StreamBroker
      const memory = yield* MemoryBroker
      yield* memory.down("credentials")
      // No clock adjustment: a retry would wait for the TestClock and never return.
      const error = yield* Effect.flip(broker.streamExists("s"))
      expect(error.message).toContain("authentication failed")
      expect(error.message).not.toContain("gave up")
      const state = yield* broker.connectionState
      expect(state._tag).toBe("Disconnected")
    }).pipe(Effect.provide(layers())))
})

describe("an outage is waited out once, under one policy", () => {
  // A 10 s policy (pauses of up to 5 s, with jitter). Before, each caller that had waited for a reconnection which gave up started an
  // outage of its own under a fresh policy: a named send gave up after 23 s, receive after 26-30 s.
  const seconds = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
    Effect.gen(function*() {
      let elapsed = 0
      while (fiber.unsafePoll() === null && elapsed < 120) {
        yield* TestClock.adjust("1 second")
        elapsed++
      }
      return elapsed
    })

  it.effect("a named send fails when the policy gives up (10 s and the last pause), not later", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      yield* send({ stream: "s", messages: bodies(1) })
      yield* memory.down()
      const fiber = yield* Effect.fork(Effect.flip(send({ stream: "s", messages: bodies(1, "p"), producerName: "p" })))
      const elapsed = yield* seconds(fiber)
      expect(elapsed).toBeGreaterThanOrEqual(10)
      expect(elapsed).toBeLessThanOrEqual(16)
      expect((yield* Fiber.join(fiber)).message).toContain("gave up after")
    }).pipe(Effect.provide(layers({ retry: retryFor("10 seconds") }))))

  it.effect("receive fails when the policy gives up, plus at most the final store's bound (5 s)", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      yield* send({ stream: "s", messages: bodies(1) })
      const fiber = yield* Effect.fork(Effect.flip(receiving([], { marker: false }).pipe(Effect.flatMap(Fiber.join))))
      yield* TestClock.adjust("10 millis")
      yield* memory.down()
      const elapsed = yield* seconds(fiber)
      expect(elapsed).toBeGreaterThanOrEqual(10)
      expect(elapsed).toBeLessThanOrEqual(20)
      expect((yield* Fiber.join(fiber)).message).toContain("gave up after")
    }).pipe(Effect.provide(layers({ retry: retryFor("10 seconds") }))))

  it.effect("a stream without a leader: a named send and receive give up with the policy", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      yield* send({ stream: "s", messages: bodies(1) })
      yield* memory.loseLeader("s")
      const producer = yield* Effect.fork(Effect.flip(send({ stream: "s", messages: bodies(1, "p"), producerName: "p" })))
      const consumer = yield* Effect.fork(Effect.flip(receiving([], { marker: false }).pipe(Effect.flatMap(Fiber.join))))
      const producerDone = yield* seconds(producer)
      const consumerDone = producerDone + (yield* seconds(consumer))
      expect(producerDone).toBeLessThanOrEqual(16)
      expect(consumerDone).toBeLessThanOrEqual(16)
      expect((yield* Fiber.join(producer)).message).toContain("code 6")
      expect((yield* Fiber.join(consumer)).message).toContain("code 6")
    }).pipe(Effect.provide(layers({ retry: retryFor("10 seconds") }))))
})

describe("a stream deleted under a running workflow", () => {
  // The broker ends its publishers and subscriptions (a metadata update); declaring again finds it
  // gone, which no policy waits out.
  it.effect("receive fails with StreamNotFound within the first pause, not after the policy", () =>
    Effect.gen(function*() {
      const broker = yield* StreamBroker
      yield* send({ stream: "s", messages: bodies(3) })
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(Effect.flip(receiving(seen, { marker: false }).pipe(Effect.flatMap(Fiber.join))))
      yield* TestClock.adjust("10 millis")
      expect(seen).toEqual(bodies(3))
      yield* broker.deleteStream("s")
      yield* TestClock.adjust("1 second")
      const error = fiber.unsafePoll()
      expect(error?._tag === "Success" && error.value._tag).toBe("StreamNotFound")
    }).pipe(Effect.provide(layers())))

  it.effect("a named send fails with StreamNotFound within the first pause", () =>
    Effect.gen(function*() {
      const broker = yield* StreamBroker
      yield* send({ stream: "s", messages: bodies(1) })
      const fiber = yield* Effect.fork(Effect.flip(send({ stream: "s", messages: bodies(5, "p"), producerName: "p" })))
      yield* TestClock.adjust("10 millis")
      expect(fiber.unsafePoll()).toBeNull() // waiting for confirms
      yield* broker.deleteStream("s")
      yield* TestClock.adjust("1 second")
      const error = fiber.unsafePoll()
      expect(error?._tag === "Success" && error.value._tag).toBe("StreamNotFound")
    }).pipe(Effect.provide(layers({ dropConfirm: (body) => new TextDecoder().decode(body).startsWith("p") }))))
})

describe("a stop signal during an outage", () => {
  it.effect("ends receive within the final-store bound; the summary says the store was not confirmed", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      yield* send({ stream: "s", messages: bodies(3) })
      const signal = yield* Effect.makeLatch(false)
      const seen: Array<string> = []
      const fiber = yield* receiving(seen, { marker: false, signal: signal.await })
      yield* TestClock.adjust("1 second")
      yield* memory.down()
      yield* TestClock.adjust("3 seconds")
      yield* signal.open
      yield* TestClock.adjust("5 seconds")
      const summary = yield* Fiber.join(fiber)
      expect(summary.stoppedBy).toBe("signal")
      expect(summary.messages).toBe(3)
      expect(summary.storeConfirmed).toBe(false)
      expect(Option.getOrThrow(summary.storeProblem)).toContain("not confirmed within 5s")
    }).pipe(Effect.provide(layers())))
})

describe("a receive interrupted between two subscriptions (a dropped connection, the broker still up)", () => {
  it.effect("stores the last processed offset: the consumer's own final store, not the subscription's", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const offsets = yield* OffsetStore
      yield* send({ stream: "s", messages: bodies(5) })
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(receive({
        stream: "s",
        consumerName: "c",
        stop: { marker: false },
        tracking: TrackingStrategy.Manual({ every: 1000 }),
        onMessage: (message) => Effect.sync(() => void seen.push(bodyText(message)))
      }))
      yield* TestClock.adjust("10 millis")
      expect(seen).toEqual(bodies(5))
      // The subscription ends with the connection (not stored then: the next one resumes from
      // memory); before the pause before the next one is over, the receive is interrupted.
      yield* memory.loseConnection
      yield* TestClock.adjust("1 millis") // the pause before the next subscription is 100 ms or so
      yield* Fiber.interrupt(fiber)
      expect(yield* offsets.query("c", "s")).toEqual(Option.some(4n))
    }).pipe(Effect.provide(layers())))
})

describe("an interrupted receive during an outage", () => {
  it.effect("tries the final store, and finishes its finalizers within the final-store bound", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      yield* send({ stream: "s", messages: bodies(3) })
      const fiber = yield* receiving([], { marker: false })
      yield* TestClock.adjust("1 second")
      yield* memory.down()
      yield* TestClock.adjust("1 second")
      const interrupted = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* TestClock.adjust("4 seconds")
      expect(interrupted.unsafePoll()).toBeNull() // still trying to store
      yield* TestClock.adjust("1 second")
      // Done by now: a finalizer that waited for the broker would still be running.
      expect(interrupted.unsafePoll()).not.toBeNull()
    }).pipe(Effect.provide(layers())))
})
