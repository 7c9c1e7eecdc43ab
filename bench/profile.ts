/**
 * One consume under V8's profiler (Node only: node:inspector), for finding where the time goes.
 *
 *   node scripts/run.mjs bench/profile.ts [N=1000000] [receive|consume|raw|chunks]
 *   ALLOC=1 ...   a sampling heap profile instead (allocation sites)
 *   BUF=n         receive's bufferSize (default 1024); NOPROF=1: time it only
 *   modes: receive, consume, raw (tuned client), subscribe (the bare StreamBroker.subscribe,
 *   drained), mapchunks / select (+ an operator, drained), tap / foreach / fold (+ an effect per
 *   chunk, in the stream or in the sink); each prints the heap's growth at its peak
 *
 * Publishes N small messages with a tuned raw client, then profiles only the consume: our
 * `receive` (tracking none), our `consume` Stream, or the tuned raw client's loop; `chunks` prints
 * the sizes of the chunks the consumer's Stream sees. Writes /tmp/prof-MODE.cpuprofile (open it in
 * Chrome's DevTools) or /tmp/alloc-MODE.json, and prints the rate (lower than unprofiled).
 */
import { Effect, Either, Layer, ManagedRuntime } from "effect"
import * as fs from "node:fs"
import { Session } from "node:inspector/promises"
import { Offset } from "rabbitmq-stream-js-client"
import { publishTutorialStream } from "./tutorial-stream.ts"
import { consume, Internal, isTutorialMarker, OffsetStore, parseUri, receive, StartPosition, StreamBroker, type StreamMessage, TrackingStrategy } from "../src/StreamOffsets.ts"
import { Chunk, Stream } from "effect"

const { clientTuning, selectUntilStop } = Internal

const n = Number(process.argv[2] ?? 1_000_000)
const mode = process.argv[3] ?? "receive"
const config = Either.getOrThrow(parseUri("rabbitmq-stream://guest:guest@localhost:5552/%2f"))
const stream = `prof-${Date.now()}`
const raw = await publishTutorialStream(stream, n)
const rt = ManagedRuntime.make(OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(config))))
await rt.runPromise(Effect.void)
const session = new Session()
session.connect()
const alloc = process.env.ALLOC === "1"
const off = process.env.NOPROF === "1"
if (off) {
  // timing only
} else if (alloc) {
  await session.post("HeapProfiler.enable")
  await session.post("HeapProfiler.startSampling", { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as any)
} else {
  await session.post("Profiler.enable")
  await session.post("Profiler.start")
}
const heap = { base: process.memoryUsage().heapUsed, peak: 0 }
const sampler = setInterval(() => (heap.peak = Math.max(heap.peak, process.memoryUsage().heapUsed)), 20)
const t0 = performance.now()
if (mode === "raw") {
  await new Promise<void>((resolve) => {
    let c = 0
    raw.declareConsumer({ stream, offset: Offset.first(), creditPolicy: clientTuning.creditPolicy() }, (m) => {
      c++
      // The tuned client hands its listeners this module's decoded messages (`body`).
      if (isTutorialMarker(m as unknown as StreamMessage)) resolve()
    }).then((consumer) => clientTuning.tuneConsumer(consumer))
  })
} else if (mode === "subscribe") {
  // The bare subscription: the delivery buffer and a Stream, nothing of the consumer's pipeline.
  await rt.runPromise(Effect.scoped(Effect.gen(function*() {
    const broker = yield* StreamBroker
    const messages = yield* broker.subscribe({ stream, start: StartPosition.First() })
    let seen = 0
    yield* Stream.runForEachChunk(Stream.takeUntil(messages, () => ++seen >= n), () => Effect.void)
  })))
} else if (mode === "select" || mode === "fold" || mode === "mapchunks" || mode === "foreach" || mode === "tap") {
  await rt.runPromise(Effect.scoped(Effect.gen(function*() {
    const broker = yield* StreamBroker
    const messages = yield* broker.subscribe({ stream, start: StartPosition.First() })
    let seen = 0
    const bounded = Stream.takeUntil(messages, () => ++seen >= n)
    if (mode === "select") {
      yield* Stream.runDrain(selectUntilStop(bounded, { stream, test: () => undefined }))
    } else if (mode === "tap") {
      let k = 0
      yield* Stream.runDrain(Stream.tap(Stream.chunks(bounded), (c) => Effect.sync(() => void (k += c.length))))
    } else if (mode === "foreach") {
      let k = 0
      yield* Stream.runForEach(Stream.chunks(bounded), (c) => Effect.sync(() => void (k += c.length)))
    } else if (mode === "mapchunks") {
      yield* Stream.runDrain(Stream.mapChunks(bounded, (c) => c))
    } else {
      yield* Stream.runFoldEffect(Stream.chunks(bounded), 0, (k, c) => Effect.succeed(k + c.length))
    }
  })))
} else if (mode === "chunks") {
  const sizes = await rt.runPromise(Stream.runCollect(Stream.mapChunks(consume({ stream, consumerName: "p", tracking: TrackingStrategy.None(), stop: { marker: isTutorialMarker } }), (c) => Chunk.of(c.length) as any)))
  const arr = [...sizes] as Array<number>
  console.log(`chunks ${arr.length}, mean ${n / arr.length}, max ${Math.max(...arr)}`)
} else if (mode === "consume") {
  await rt.runPromise(Stream.runDrain(consume({ stream, consumerName: "p", tracking: TrackingStrategy.None(), stop: { marker: isTutorialMarker } })))
} else {
  const s = await rt.runPromise(receive({ stream, consumerName: "p", tracking: TrackingStrategy.None(), stop: { marker: isTutorialMarker }, bufferSize: Number(process.env.BUF ?? 1024) }))
  if (s.messages !== n) throw new Error(`got ${s.messages}`)
}
const ms = performance.now() - t0
if (off) {
  // timing only
} else if (alloc) {
  const { profile } = await session.post("HeapProfiler.stopSampling")
  fs.writeFileSync(`/tmp/alloc-${mode}.json`, JSON.stringify(profile))
} else {
  const { profile } = await session.post("Profiler.stop")
  fs.writeFileSync(`/tmp/prof-${mode}.cpuprofile`, JSON.stringify(profile))
}
clearInterval(sampler)
console.log(`${mode}: ${Math.round(n / ms * 1000)} msg/s, heap +${Math.round((heap.peak - heap.base) / 1e6)} MB at its peak`)
await raw.deleteStream({ stream })
await rt.dispose()
await raw.close()
process.exit(0)
