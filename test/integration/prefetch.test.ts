// The consumer's ordered prefetch against the real broker: more than one chunk of credit out, yet
// messages in order, and a consumer that does not pull holds the broker back.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { Buffer } from "node:buffer"
import { Client } from "rabbitmq-stream-js-client"
import {
  bodyText,
  OffsetStore,
  parseUri,
  receive,
  StartPosition,
  StreamBroker,
  TrackingStrategy
} from "../../src/StreamOffsets.ts"
import { deleteStream, port, uniqueStream, withClient } from "./helpers.ts"

const config = Either.getOrThrow(parseUri(`rabbitmq-stream://guest:guest@localhost:${port}/%2f`))
const live = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(config)))

// How many messages the client has handed to our handlers: counted by wrapping the handler of
// every consumer declared while these tests run.
const handed = { count: 0 }
const declareConsumer = Client.prototype.declareConsumer
beforeAll(() => {
  Client.prototype.declareConsumer = function(this: Client, params, handle, ...rest) {
    return declareConsumer.call(this, params, (message) => {
      handed.count++
      return handle(message)
    }, ...rest)
  }
})
afterAll(() => {
  Client.prototype.declareConsumer = declareConsumer
})

const N = 100_000
const CHUNK = 50
/** N messages `m0`..., in small chunks (a flush every CHUNK messages): many chunks to prefetch. */
const publishInSmallChunks = (stream: string) =>
  withClient(async (client) => {
    await client.createStream({ stream, arguments: {} })
    const publisher = await client.declarePublisher({ stream })
    for (let i = 0; i < N; i++) {
      await publisher.send(Buffer.from(`m${i}`))
      if ((i + 1) % CHUNK === 0) await publisher.flush()
    }
    await publisher.flush()
    // Confirms are not awaited here: reading waits for the messages instead.
    await new Promise((resolve) => setTimeout(resolve, 500))
  })

describe("ordered prefetch", () => {
  it.live("many small chunks come in order, each message once", () => {
    const stream = uniqueStream("prefetch-order")
    return Effect.gen(function*() {
      yield* Effect.promise(() => publishInSmallChunks(stream))
      const bodies: Array<string> = []
      const offsets: Array<bigint> = []
      const summary = yield* receive({
        stream,
        consumerName: "order",
        tracking: TrackingStrategy.None(),
        stop: { marker: false, count: N },
        onMessage: (message) =>
          Effect.sync(() => {
            bodies.push(bodyText(message))
            offsets.push(message.offset)
          })
      })
      expect(summary.messages).toBe(N)
      expect(offsets.every((offset, i) => i === 0 || offset > offsets[i - 1]!)).toBe(true)
      expect(bodies.every((body, i) => body === `m${i}`)).toBe(true)
    }).pipe(Effect.provide(live), Effect.ensuring(Effect.promise(() => deleteStream(stream))))
  }, 120_000)

  it.live("a consumer that does not pull holds the broker back; pulling again gets every message in order", () => {
    const stream = uniqueStream("prefetch-backpressure")
    return Effect.gen(function*() {
      yield* Effect.promise(() => publishInSmallChunks(stream))
      const broker = yield* StreamBroker
      yield* Effect.scoped(Effect.gen(function*() {
        const before = handed.count
        const messages = yield* broker.subscribe({ stream, start: StartPosition.First(), bufferSize: 100 })
        // Nothing pulls for 2 s: the buffer fills (100), the client's handler waits, no credit
        // goes back, and the broker stops after the chunks it was allowed to send.
        yield* Effect.sleep("2 seconds")
        const whilePaused = handed.count - before
        expect(whilePaused).toBeGreaterThanOrEqual(100)
        expect(whilePaused).toBeLessThanOrEqual(100 + CHUNK)
        const all = yield* Stream.runCollect(Stream.take(messages, N))
        const bodies = Chunk.toArray(all).map(bodyText)
        expect(bodies.every((body, i) => body === `m${i}`)).toBe(true)
        expect(handed.count - before).toBe(N)
      }))
    }).pipe(Effect.provide(live), Effect.ensuring(Effect.promise(() => deleteStream(stream))))
  }, 120_000)
})
