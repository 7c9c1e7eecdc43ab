// The tutorial's workflows against a real RabbitMQ 4: offsets stored by the broker, resumed from.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, Schedule } from "effect"
import {
  isTutorialMarker,
  type ConnectionConfig,
  bodyText,
  OffsetStore,
  parseUri,
  receive,
  send,
  StreamBroker,
  tutorialMessages
} from "../../src/StreamOffsets.ts"

const config: ConnectionConfig = Either.getOrThrow(
  parseUri(`rabbitmq-stream://guest:guest@localhost:${process.env.RABBITMQ_STREAM_PORT ?? "5552"}/%2f`)
)
const live = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(config)))

const uniqueStream = (name: string) => `it-${name}-${process.pid}-${Date.now()}`

/** A stream that exists for the test and is deleted after it. */
const withStream = <A, E, R>(name: string, f: (stream: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.succeed(uniqueStream(name)),
    f,
    (stream) => Effect.flatMap(StreamBroker, (broker) => Effect.ignore(broker.deleteStream(stream)))
  )

const receiveAll = (stream: string, consumerName: string) =>
  Effect.gen(function*() {
    const bodies: Array<string> = []
    const summary = yield* receive({
      stream,
      consumerName,
      stop: { marker: isTutorialMarker },
      onMessage: (message) => Effect.sync(() => void bodies.push(bodyText(message)))
    })
    return { summary, bodies }
  })

describe("offset tracking on RabbitMQ", () => {
  it.live("send, receive, send, receive: the second receive resumes after the first", () =>
    withStream("tutorial", (stream) =>
      Effect.gen(function*() {
        expect(yield* send({ stream, messages: tutorialMessages(100) })).toEqual({ stream, sent: 100, confirmed: 100, skipped: 0 })
        const first = yield* receiveAll(stream, "tutorial")
        yield* send({ stream, messages: tutorialMessages(100) })
        const second = yield* receiveAll(stream, "tutorial")

        expect(first.summary.messages).toBe(100)
        expect(first.bodies.at(-1)).toBe("marker")
        expect(first.summary.firstOffset).toEqual(Option.some(0n))
        expect(second.summary.messages).toBe(100)
        expect(second.bodies[0]).toBe("hello 0")
        expect(second.bodies.at(-1)).toBe("marker")
        expect(Option.getOrThrow(second.summary.firstOffset)).toBeGreaterThan(
          Option.getOrThrow(first.summary.lastOffset)
        )

        // The stored offset is the broker's, visible from a brand-new connection (a layer's, and one
        // made in a scope of its own).
        const stored = yield* Effect.flatMap(OffsetStore, (store) => store.query("tutorial", stream)).pipe(
          Effect.provide(OffsetStore.layerServer.pipe(Layer.provide(StreamBroker.layer(config))))
        )
        expect(stored).toEqual(second.summary.lastOffset)
        const queried = yield* Effect.scoped(Effect.flatMap(StreamBroker.make(config), (broker) => broker.queryOffset("tutorial", stream)))
        expect(queried).toEqual(second.summary.lastOffset)
      })
    ).pipe(Effect.provide(live)))

  it.live("stores and finds an offset of 0 (the client's own storeOffset cannot)", () =>
    withStream("zero", (stream) =>
      Effect.gen(function*() {
        yield* send({ stream, messages: ["only"] })
        const store = yield* OffsetStore
        expect(yield* store.query("zero", stream)).toEqual(Option.none())
        yield* store.store("zero", stream, 0n)
        // The broker does not acknowledge a store: wait until a query sees it.
        const seen = yield* store.query("zero", stream).pipe(
          Effect.flatten,
          Effect.retry(Schedule.spaced("50 millis")),
          Effect.timeout("5 seconds")
        )
        expect(seen).toBe(0n)
      })
    ).pipe(Effect.provide(live)))

  it.live("refuses to redeclare a stream with other retention", () =>
    withStream("retention", (stream) =>
      Effect.gen(function*() {
        yield* send({ stream, messages: ["a"] })
        const error = yield* send({ stream, messages: ["b"], retention: { maxLengthBytes: 1_000_000 } }).pipe(
          Effect.flip
        )
        expect(error._tag).toBe("StreamPreconditionFailed")
      })
    ).pipe(Effect.provide(live)))

  it.live("receive on a missing stream fails with StreamNotFound", () =>
    Effect.gen(function*() {
      const error = yield* receive({ stream: uniqueStream("missing"), consumerName: "c" }).pipe(Effect.flip)
      expect(error._tag).toBe("StreamNotFound")
    }).pipe(Effect.provide(live)))
})

describe("the layer's process listeners (the client throws into the process)", () => {
  const counts = () => [process.listenerCount("uncaughtException"), process.listenerCount("unhandledRejection")]
  it.live("are there while a StreamBroker layer is open (once for two layers) and gone when the last closes", () =>
    Effect.gen(function*() {
      const before = counts()
      const during = yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(StreamBroker.layer(config))
        const one = counts()
        yield* Layer.build(StreamBroker.layer(config))
        return [one, counts()]
      }))
      expect(during).toEqual([before.map((n) => n + 1), before.map((n) => n + 1)])
      expect(counts()).toEqual(before)
    }))

  it.live("a connection's state is observable: Connected, naming the endpoint", () =>
    Effect.gen(function*() {
      const state = yield* Effect.flatMap(StreamBroker, (broker) => broker.connectionState)
      expect(state._tag).toBe("Connected")
      expect(state._tag === "Connected" && state.endpoint).toContain("localhost")
    }).pipe(Effect.provide(StreamBroker.layer(config))))
})
