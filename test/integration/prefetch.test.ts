// The consumer's ordered prefetch against the real broker: more than one chunk of credit out, yet
// messages in order, and a consumer that does not pull holds the broker back.
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { Buffer } from "node:buffer"
import {
  bodyText,
  OffsetStore,
  parseUri,
  receive,
  StartPosition,
  StreamBroker,
  TrackingStrategy
} from "../../src/StreamOffsets.ts"
import { deleteStream, port, run, uniqueStream, withClient } from "./helpers.ts"

const config = Either.getOrThrow(parseUri(`rabbitmq-stream://guest:guest@localhost:${port}/%2f`))
const live = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(config)))

/** How many messages the broker sent to the consumers of a stream (its own count, `messages_consumed`). */
const sentBy = async (stream: string) => {
  // What `rabbitmq-streams list_stream_consumers stream messages_consumed` lists (that command
  // is not found by the CLI in the broker's root), one `stream<TAB>count` line per consumer.
  const listed = await run("bash", ["scripts/broker.sh", "ctl", "eval", `lists:foreach(fun(I) ->
      io:format("~s\\t~p~n", [proplists:get_value(stream, I), proplists:get_value(messages_consumed, I)]) end,
    lists:append([rabbit_stream_reader:consumers_info(P, [stream, messages_consumed]) || P <- rabbit_stream:list(<<"/">>)])).`])
  expect(listed.code, listed.stderr).toBe(0)
  return listed.stdout.split("\n").filter((line) => line.startsWith(`${stream}\t`)).reduce((sum, line) => sum + Number(line.split("\t")[1]), 0)
}

const N = 100_000
const CHUNK = 50
/** The chunks of credit a consumer keeps out (PREFETCH_CHUNKS). */
const PREFETCH = 2
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
        const messages = yield* broker.subscribe({ stream, start: StartPosition.First(), bufferSize: 100 })
        // Nothing pulls for 2 s: the buffer fills (100), no credit goes back, and the broker stops
        // after the chunks it was allowed to send: a credit per chunk buffered below 100, and one
        // chunk more (it waits, not buffered). Chunks hold a flush of 50, or a few flushes that
        // reached the broker together (seen: 274 sent): bounded by a few chunks, not the stream.
        yield* Effect.sleep("2 seconds")
        const whilePaused = yield* Effect.promise(() => sentBy(stream))
        expect(whilePaused).toBeGreaterThanOrEqual(100)
        expect(whilePaused).toBeLessThanOrEqual(100 + PREFETCH * 10 * CHUNK)
        const all = yield* Stream.runCollect(Stream.take(messages, N))
        const bodies = Chunk.toArray(all).map(bodyText)
        expect(bodies.every((body, i) => body === `m${i}`)).toBe(true)
      }))
    }).pipe(Effect.provide(live), Effect.ensuring(Effect.promise(() => deleteStream(stream))))
  }, 120_000)
})
