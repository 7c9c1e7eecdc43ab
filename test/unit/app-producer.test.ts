// The Producer for apps, on the memory broker with TestClock: publish from many fibers, each
// confirmed; backpressure; publishing ids of the app's own (the outbox pattern); lost connections,
// named and unnamed; timeouts and rejections; closing; bad input.
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Exit, Fiber, Layer, Option, Schema, Scope, Stream, TestClock } from "effect"
import {
  Amqp,
  bodyText,
  consume,
  MemoryBroker,
  OffsetStore,
  Producer,
  type ProducerOptions,
  receive,
  send,
  StreamBroker,
  type ValueProducer
} from "../../src/StreamOffsets.ts"

const layers = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerMemory()))

const stream = (name = "events") => Effect.gen(function*() {
  yield* send({ stream: name, messages: [] })
  return name
})
const bodies = (name = "events") => Effect.map(Effect.flatMap(MemoryBroker, (m) => m.messages(name)), (ms) => ms.map(bodyText))

describe("Producer", () => {
  it.scoped("publish completes when the broker confirms; many fibers at once, each message once", () =>
    Effect.gen(function*() {
      const producer = yield* Producer.make({ stream: yield* stream() })
      const results = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, f) => f),
        (f) => Effect.forEach(Array.from({ length: 20 }, (_, i) => `f${f}-${i}`), (body) => producer.publish(body)),
        { concurrency: "unbounded" }
      )
      expect(results.flat().every((r) => !r.skipped)).toBe(true)
      const ids = results.flat().map((r) => r.publishingId)
      expect(new Set(ids).size).toBe(1000)
      const stored = yield* bodies()
      expect(stored).toHaveLength(1000)
      expect(new Set(stored).size).toBe(1000)
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.scoped("a confirm comes after the broker's delay; publish waits for it", () =>
    Effect.gen(function*() {
      const producer = yield* Producer.make({ stream: yield* stream() })
      const fiber = yield* Effect.fork(producer.publish("a"))
      yield* TestClock.adjust("4 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toEqual({ publishingId: 1n, skipped: false })
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "5 seconds" }))))

  it.scoped("at most maxInFlight wait for confirms: the next publish waits for room (backpressure)", () =>
    Effect.gen(function*() {
      const producer = yield* Producer.make({ stream: yield* stream(), maxInFlight: 3, confirmTimeout: "1 minute" })
      const first = yield* Effect.fork(Effect.forEach(["a", "b", "c"], (b) => producer.publish(b), { concurrency: "unbounded" }))
      yield* TestClock.adjust("10 millis")
      const fourth = yield* Effect.fork(producer.publish("d"))
      yield* TestClock.adjust("1 second")
      expect(yield* bodies()).toEqual(["a", "b", "c"])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(first)
      expect(fourth.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fourth)
      expect(yield* bodies()).toEqual(["a", "b", "c", "d"])
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "2 seconds" }))))

  it.scoped("publishing ids of the app's own (outbox): an id the broker has is skipped, said so, and not written twice", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      const outbox = Array.from({ length: 15 }, (_, i) => ({ body: `order ${i + 1}`, publishingId: BigInt(i + 1) }))
      // A first run gets 10 out, then its process dies.
      yield* Effect.scoped(Effect.gen(function*() {
        const producer = yield* Producer.make({ stream: name, name: "outbox" })
        yield* Effect.forEach(outbox.slice(0, 10), (m) => producer.publish(m))
      }))
      const producer = yield* Producer.make({ stream: name, name: "outbox" })
      expect(yield* producer.lastPublishingId).toBe(10n)
      const results = yield* Effect.forEach(outbox, (m) => producer.publish(m))
      expect(results.map((r) => r.skipped)).toEqual([...Array(10).fill(true), ...Array(5).fill(false)])
      expect(yield* bodies()).toEqual(outbox.map((m) => m.body))
      // Lower than the last: skipped too, never written out of order.
      expect(yield* producer.publish({ body: "late", publishingId: 3n })).toEqual({ publishingId: 3n, skipped: true })
      expect(yield* producer.lastPublishingId).toBe(15n)
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.scoped("a named producer rides out a lost connection: every message once, every publish confirmed", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const producer = yield* Producer.make({ stream: yield* stream(), name: "p" })
      const all = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 200 }, (_, i) => `m${i}`), (b) => producer.publish(b), { concurrency: 20 })
      )
      yield* TestClock.adjust("1 second")
      yield* memory.loseConnection
      yield* TestClock.adjust("1 second")
      yield* memory.loseConnection
      yield* TestClock.adjust("30 seconds")
      const results = yield* Fiber.join(all)
      expect(results.every((r) => !r.skipped)).toBe(true)
      const stored = yield* bodies()
      expect(stored.toSorted()).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`).toSorted())
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "500 millis" }))))

  it.scoped("an unnamed producer fails what was in flight when its connection is lost (ConnectionLost), and goes on", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const producer = yield* Producer.make({ stream: yield* stream() })
      const inFlight = yield* Effect.fork(Effect.exit(producer.publish("a")))
      yield* TestClock.adjust("100 millis")
      yield* memory.loseConnection
      yield* TestClock.adjust("10 seconds")
      const exit = yield* Fiber.join(inFlight)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("ConnectionLost")
      const later = yield* Effect.fork(producer.publish("b"))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(later)).skipped).toBe(false)
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "1 second" }))))

  it.scoped("a message not confirmed in time fails with ConfirmTimeout; a rejected one with PublishError; the others go on", () =>
    Effect.gen(function*() {
      const producer = yield* Producer.make({ stream: yield* stream(), confirmTimeout: "3 seconds" })
      const lost = yield* Effect.fork(Effect.flip(producer.publish("never confirmed")))
      const rejected = yield* Effect.fork(Effect.flip(producer.publish("rejected")))
      const fine = yield* Effect.fork(producer.publish("fine"))
      yield* TestClock.adjust("3 seconds")
      expect((yield* Fiber.join(lost))._tag).toBe("ConfirmTimeout")
      expect(yield* Fiber.join(rejected)).toMatchObject({ _tag: "PublishError", code: 16 })
      expect((yield* Fiber.join(fine)).skipped).toBe(false)
    }).pipe(Effect.provide(StreamBroker.layerMemory({
      dropConfirm: (body) => new TextDecoder().decode(body) === "never confirmed",
      rejectPublish: (body) => (new TextDecoder().decode(body) === "rejected" ? 16 : undefined)
    }))))

  it.scoped("a named producer takes an overdue confirm as a connection that no longer works: a new session, nothing failed or doubled", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      const producer = yield* Producer.make({ stream: name, name: "patient", confirmTimeout: "3 seconds" })
      const overdue = yield* Effect.fork(producer.publish("confirm lost"))
      const fine = yield* Effect.fork(producer.publish("fine"))
      yield* TestClock.adjust("3 seconds")
      // The new session finds both in the stream (the broker has their ids): confirmed, not sent again.
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(overdue)).toEqual({ publishingId: 1n, skipped: false })
      expect(yield* Fiber.join(fine)).toEqual({ publishingId: 2n, skipped: false })
      expect(yield* bodies(name)).toEqual(["confirm lost", "fine"])
    }).pipe(Effect.provide(StreamBroker.layerMemory({
      dropConfirm: (body) => new TextDecoder().decode(body) === "confirm lost"
    }))))

  it.scoped("publishAll: a Stream of messages, confirms counted, ids skipped counted", () =>
    Effect.gen(function*() {
      const producer = yield* Producer.make({ stream: yield* stream(), name: "bulk" })
      const first = yield* producer.publishAll(Stream.range(1, 1000).pipe(Stream.map((i) => ({ body: `e${i}`, publishingId: BigInt(i) }))))
      expect(first).toEqual({ published: 1000, skipped: 0 })
      const again = yield* producer.publishAll(Stream.range(990, 1010).pipe(Stream.map((i) => ({ body: `e${i}`, publishingId: BigInt(i) }))))
      expect(again).toEqual({ published: 10, skipped: 11 })
      expect(yield* bodies()).toHaveLength(1010)
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.effect("closing waits for what was handed over; publish afterwards fails with ProducerClosed", () =>
    Effect.gen(function*() {
      yield* stream()
      const scope = yield* Scope.make()
      const producer = yield* Producer.make({ stream: "events" }).pipe(Scope.extend(scope))
      const handed = yield* Effect.fork(producer.publish("a"))
      yield* TestClock.adjust("10 millis")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(closing)
      expect((yield* Fiber.join(handed)).skipped).toBe(false)
      expect((yield* Effect.flip(producer.publish("b")))._tag).toBe("ProducerClosed")
      expect(yield* bodies()).toEqual(["a"])
    }).pipe(Effect.provide(StreamBroker.layerMemory({ confirmDelay: "1 second" }))))

  it.scoped("bad input is refused before anything is published", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      const unnamed = yield* Producer.make({ stream: name })
      const named = yield* Producer.make({ stream: name, name: "n" })
      const refusal = <R>(effect: Effect.Effect<unknown, { readonly message: string }, R>) => Effect.map(Effect.flip(effect), (e) => e.message)
      expect(yield* refusal(unnamed.publish({ body: "a", publishingId: 1n }))).toMatch(/needs a named producer/)
      expect(yield* refusal(named.publish({ body: "a", publishingId: 0n }))).toMatch(/positive bigint/)
      expect(yield* refusal(named.publish({ body: "a", applicationProperties: { n: Amqp.ubyte(300) } }))).toMatch(/ubyte/)
      expect(yield* refusal(Producer.make({ stream: "missing" }))).toMatch(/does not exist/)
      expect(yield* refusal(Producer.make({ stream: name, maxInFlight: 0 } as ProducerOptions))).toMatch(/maxInFlight/)
      expect(yield* bodies()).toEqual([])
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.effect("sub-entry batches (gzip): each message settles as its own; an outbox run again skips whole batches; no filter values", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      const outbox = Stream.range(1, 23).pipe(Stream.map((i) => ({ body: `event ${i}`, publishingId: BigInt(i) })))
      const run = Effect.scoped(Effect.gen(function*() {
        const producer = yield* Producer.make({ stream: name, name: "batches", subEntrySize: 5, compression: "gzip" })
        const all = yield* producer.publishAll(outbox)
        const one = yield* producer.publish({ body: "event 24", publishingId: 24n })
        return { all, one }
      }))
      expect(yield* run).toEqual({ all: { published: 23, skipped: 0 }, one: { publishingId: 24n, skipped: false } })
      expect(yield* run).toEqual({ all: { published: 0, skipped: 23 }, one: { publishingId: 24n, skipped: true } })
      expect(yield* bodies(name)).toEqual(Array.from({ length: 24 }, (_, i) => `event ${i + 1}`))
      const filtered = yield* Effect.scoped(Effect.gen(function*() {
        const producer = yield* Producer.make({ stream: name, subEntrySize: 2 })
        return yield* producer.publish({ body: "x", filterValue: "eu" }).pipe(Effect.flip)
      }))
      expect(filtered.message).toMatch(/sub-entry batches cannot carry filter values/)
    }).pipe(Effect.provide(StreamBroker.layerMemory())))

  it.effect("a layer under the app's own tag", () =>
    Effect.gen(function*() {
      class Orders extends Context.Tag("Orders")<Orders, Producer>() {}
      const program = Effect.gen(function*() {
        const orders = yield* Orders
        yield* orders.publish("order 1")
      })
      const layer = Producer.layer(Orders, { stream: "orders", retention: {} })
      yield* program.pipe(Effect.provide(layer))
      expect(yield* bodies("orders")).toEqual(["order 1"])
    }).pipe(Effect.provide(StreamBroker.layerMemory())))
})


describe("Schema-typed payloads", () => {
  const Order = Schema.Struct({ order: Schema.Number, placedAt: Schema.DateFromString })
  type Order = typeof Order.Type
  const order = (n: number): Order => ({ order: n, placedAt: new Date(1_700_000_000_000 + n) })

  it.effect("a Producer with a schema publishes values; consume and receive with it give them back, typed", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      yield* Effect.scoped(Effect.gen(function*() {
        const producer = yield* Producer.make({ stream: name, name: "orders", schema: Order })
        yield* producer.publish(order(1))
        yield* producer.publish(Producer.message(order(2), { publishingId: 7n, applicationProperties: { region: "eu" } }))
      }))
      const stored = yield* Effect.flatMap(MemoryBroker, (m) => m.messages(name))
      expect(stored.map((m) => m.properties?.contentType)).toEqual(["application/json", "application/json"])
      expect(stored[1]!.applicationProperties).toEqual({ region: "eu" })
      const consumed = yield* consume({ stream: name, consumerName: "c", schema: Order, stop: { count: 2 } }).pipe(
        Stream.map((m) => m.value),
        Stream.runCollect
      )
      expect(Chunk.toArray(consumed)).toEqual([order(1), order(2)])
      const values: Array<Order> = []
      yield* receive({ stream: name, consumerName: "r", schema: Order, stop: { count: 2 }, onMessage: (m) => Effect.sync(() => void values.push(m.value)) })
      expect(values).toEqual([order(1), order(2)])
    }).pipe(Effect.provide(layers)))

  it.effect("a layer with a schema under a ValueProducer tag; a tag and options that disagree do not compile", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      class Orders extends Context.Tag("Orders")<Orders, ValueProducer<Order>>() {}
      class Plain extends Context.Tag("Plain")<Plain, Producer>() {}
      yield* Effect.gen(function*() {
        const orders = yield* Orders
        yield* orders.publish(order(1))
        yield* orders.publish(Producer.message(order(2), { properties: { messageId: "two" } }))
      }).pipe(Effect.provide(Producer.layer(Orders, { stream: name, schema: Order })))
      const values = yield* consume({ stream: name, consumerName: "c", schema: Order, stop: { count: 2 } }).pipe(
        Stream.map((m) => [m.value, m.properties?.messageId]),
        Stream.runCollect
      )
      expect(Chunk.toArray(values)).toEqual([[order(1), undefined], [order(2), "two"]])
      // @ts-expect-error a tag of values needs the schema that encodes them
      Producer.layer(Orders, { stream: name })
      // @ts-expect-error a tag of plain messages cannot take a schema
      Producer.layer(Plain, { stream: name, schema: Order })
    }).pipe(Effect.provide(layers)))

  it.effect("a value the schema cannot encode fails publish with InvalidArgument; nothing is published", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      const error = yield* Effect.scoped(Effect.gen(function*() {
        const producer = yield* Producer.make({ stream: name, schema: Order })
        return yield* Effect.flip(producer.publish({ order: "one" as unknown as number, placedAt: new Date() }))
      }))
      expect(error._tag).toBe("InvalidArgument")
      expect(error.message).toMatch(/does not encode with the schema/)
      expect(yield* bodies(name)).toEqual([])
    }).pipe(Effect.provide(layers)))

  it.effect("a body that does not decode: fail names the stream and offset; skip moves past it", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      yield* send({ stream: name, messages: [JSON.stringify({ order: 1, placedAt: "2026-12-02T00:00:00.000Z" }), "not json", JSON.stringify({ order: "x" }), JSON.stringify({ order: 4, placedAt: "2026-12-02T00:00:00.000Z" })] })
      const failed = yield* receive({ stream: name, consumerName: "f", schema: Order, stop: { count: 4 } }).pipe(Effect.flip)
      expect(failed).toMatchObject({ _tag: "MessageDecodeError", stream: name, offset: 1n })
      expect(failed.message).toMatch(/the body is not JSON/)
      const fiber = yield* receive({ stream: name, consumerName: "s", schema: Order, onDecodeError: "skip", stop: { idleTimeout: "1 second" } }).pipe(Effect.fork)
      yield* TestClock.adjust("1 second")
      const skipped = yield* Fiber.join(fiber)
      expect(skipped).toMatchObject({ messages: 2, storedOffset: Option.some(3n) })
    }).pipe(Effect.provide(layers)))

  it.effect("bodyFormat text: a string schema's value is the body itself", () =>
    Effect.gen(function*() {
      const name = yield* stream()
      yield* Effect.scoped(Effect.flatMap(Producer.make({ stream: name, schema: Schema.String, bodyFormat: "text" }), (p) => p.publish("plain text")))
      expect(yield* bodies(name)).toEqual(["plain text"])
      const values = yield* consume({ stream: name, consumerName: "c", schema: Schema.String, bodyFormat: "text", stop: { count: 1 } }).pipe(
        Stream.map((m) => m.value),
        Stream.runCollect
      )
      expect(Chunk.toArray(values)).toEqual(["plain text"])
    }).pipe(Effect.provide(layers)))
})
