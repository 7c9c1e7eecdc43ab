// The metrics on the memory broker: counts tagged by stream, producer and consumer, confirm
// latency, rejections, the consumer's lag (behind, then 0 once caught up), store failures, and
// the connection's state across a lost connection. Each test uses its own stream: metrics are global.
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Metric, Option, TestClock } from "effect"
import {
  confirmLatency,
  confirmsInFlight,
  connectionUp,
  consumerLag,
  disconnectedDuration,
  MemoryBroker,
  type MemoryBrokerOptions,
  messagesConfirmed,
  messagesConsumed,
  messagesRejected,
  messagesSent,
  OffsetStore,
  offsetStoreFailures,
  offsetStoreLatency,
  offsetsStored,
  receive,
  receiveSuperStream,
  reconnects,
  send,
  sendToSuperStream,
  StreamBroker
} from "../../src/StreamOffsets.ts"

const layers = (options: MemoryBrokerOptions = {}) =>
  Layer.merge(StreamBroker.layerMemory({ chunkSize: 10, ...options }), OffsetStore.layerMemory)

const bodies = (n: number) => Array.from({ length: n }, (_, i) => `m${i}`)

const tagged = <T, I, O>(metric: Metric.Metric<T, I, O>, tags: Record<string, string>) =>
  Object.entries(tags).reduce((m, [key, value]) => Metric.tagged(m, key, value), metric)

const count = (metric: Metric.Metric.Counter<number>, tags: Record<string, string>) =>
  Effect.map(Metric.value(tagged(metric, tags)), (state) => state.count)

const gauge = (metric: Metric.Metric.Gauge<number>, tags: Record<string, string>) =>
  Effect.map(Metric.value(tagged(metric, tags)), (state) => state.value)

describe("producer metrics", () => {
  it.effect("sent and confirmed per stream and producer; latency per confirm frame; nothing left in flight", () =>
    Effect.gen(function*() {
      const tags = { stream: "metrics-send", producer: "p" }
      const fiber = yield* Effect.fork(send({ stream: "metrics-send", messages: bodies(100), producerName: "p" }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(yield* count(messagesSent, tags)).toBe(100)
      expect(yield* count(messagesConfirmed, tags)).toBe(100)
      expect(yield* gauge(confirmsInFlight, tags)).toBe(0)
      const latency = yield* Metric.value(tagged(confirmLatency, tags))
      // One observation per confirm frame (the memory broker confirms one message a frame), each
      // the 250 ms the broker took.
      expect(latency.count).toBe(100)
      expect(latency.min).toBeCloseTo(0.25)
      expect(latency.max).toBeCloseTo(0.25)
      // Untagged, nothing: every update is tagged.
      expect((yield* Metric.value(messagesSent)).count).toBe(0)
    }).pipe(Effect.provide(layers({ confirmDelay: "250 millis" }))))

  it.effect("rejected messages are counted", () =>
    Effect.gen(function*() {
      // The send fails at the rejection: one message counted.
      const rejectSome = (body: Uint8Array) => (new TextDecoder().decode(body) === "m7" ? 17 : undefined)
      yield* Effect.either(send({ stream: "metrics-reject", messages: bodies(30) })).pipe(
        Effect.provide(layers({ rejectPublish: rejectSome }))
      )
      expect(yield* count(messagesRejected, { stream: "metrics-reject" })).toBe(1)
    }))
})

describe("consumer metrics", () => {
  it.effect("consumed and stored per stream and consumer; the lag while behind, then 0 once caught up", () =>
    Effect.gen(function*() {
      const tags = { stream: "metrics-lag", consumer: "c" }
      yield* send({ stream: "metrics-lag", messages: bodies(100) })
      const go = yield* Deferred.make<void>()
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(receive({
        stream: "metrics-lag",
        consumerName: "c",
        stop: { signal: Deferred.await(stop) },
        // Held at offset 30 until told: 70 messages (and the stores' tracking entries) behind.
        onMessage: (message) => (message.offset === 30n ? Deferred.await(go) : Effect.void)
      }))
      yield* TestClock.adjust("2 seconds")
      const behind = yield* gauge(consumerLag, tags)
      expect(behind).toBeGreaterThanOrEqual(70)
      expect(behind).toBeLessThanOrEqual(75)
      yield* Deferred.succeed(go, undefined)
      yield* TestClock.adjust("5 seconds")
      expect(yield* gauge(consumerLag, tags)).toBe(0)
      yield* Deferred.succeed(stop, undefined)
      const summary = yield* Fiber.join(fiber)
      expect(summary.messages).toBe(100)
      expect(yield* count(messagesConsumed, tags)).toBe(100)
      expect(yield* count(offsetsStored, tags)).toBeGreaterThanOrEqual(10)
      expect((yield* Metric.value(tagged(offsetStoreLatency, tags))).count).toBeGreaterThanOrEqual(10)
      expect(yield* count(offsetStoreFailures, tags)).toBe(0)
    }).pipe(Effect.provide(layers())))

  it.effect("a failed store is counted", () =>
    Effect.gen(function*() {
      yield* send({ stream: "metrics-store", messages: bodies(20) })
      const failing = OffsetStore.make({
        query: () => Effect.succeed(Option.none<bigint>()),
        store: () => Effect.fail("the table is gone")
      })
      const result = yield* Effect.either(receive({ stream: "metrics-store", consumerName: "c", stop: { count: 20 } })).pipe(
        Effect.provide(Layer.succeed(OffsetStore, failing))
      )
      expect(result._tag).toBe("Left")
      expect(yield* count(offsetStoreFailures, { stream: "metrics-store", consumer: "c" })).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(StreamBroker.layerMemory({ chunkSize: 10 }))))
})

describe("super stream metrics", () => {
  it.effect("tagged by the super stream and each partition: the partitions' counts add up", () =>
    Effect.gen(function*() {
      const sent = yield* sendToSuperStream({ superStream: "metrics-super", messages: bodies(300), producerName: "p" })
      yield* receiveSuperStream({ superStream: "metrics-super", consumerName: "c", stop: { count: 300 } })
      const partitions = sent.partitions.map((p) => p.stream)
      expect(partitions).toEqual(["metrics-super-0", "metrics-super-1", "metrics-super-2"])
      let confirmed = 0
      let consumed = 0
      for (const [i, partition] of partitions.entries()) {
        const byPartition = { stream: "metrics-super", partition }
        const partitionConfirmed = yield* count(messagesConfirmed, { ...byPartition, producer: "p" })
        expect(partitionConfirmed).toBe(sent.partitions[i]!.confirmed)
        confirmed += partitionConfirmed
        consumed += yield* count(messagesConsumed, { ...byPartition, consumer: "c" })
      }
      expect(confirmed).toBe(300)
      expect(consumed).toBe(300)
    }).pipe(Effect.provide(layers())))
})

describe("connection metrics", () => {
  it.effect("a lost connection: down, then up again, one reconnect and its outage's length", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      yield* send({ stream: "metrics-conn", messages: bodies(1) })
      const reconnectsBefore = (yield* Metric.value(reconnects)).count
      const outagesBefore = (yield* Metric.value(disconnectedDuration)).count
      expect((yield* Metric.value(connectionUp)).value).toBe(1)
      yield* memory.down()
      yield* TestClock.adjust("10 millis")
      expect((yield* Metric.value(connectionUp)).value).toBe(0)
      yield* TestClock.adjust("3 seconds")
      yield* memory.up
      yield* TestClock.adjust("30 seconds")
      yield* send({ stream: "metrics-conn", messages: bodies(1) })
      expect((yield* Metric.value(connectionUp)).value).toBe(1)
      expect((yield* Metric.value(reconnects)).count - reconnectsBefore).toBe(1)
      const outages = yield* Metric.value(disconnectedDuration)
      expect(outages.count - outagesBefore).toBe(1)
      expect(outages.max).toBeGreaterThanOrEqual(3)
    }).pipe(Effect.provide(layers())))
})
