/**
 * The consumer's Stream pipeline alone, without a broker: 10^6 messages in chunks of 581 (the size
 * the real consumer sees at 10^6) through the same operators as `receive` (mapChunks, retry, the
 * stop selection, the metric, the fold with the offset tracker), one stage added per line.
 *
 *   node scripts/run.mjs bench/pipeline.ts
 *
 * Measured (Node 20, 2026-12-01): 33 ms for the whole pipeline, against about 1.2 s for `receive`
 * of 10^6 from the broker: the operators are not what costs (README, Benchmark).
 */
import { Chunk, Duration, Effect, Metric, Option, Schedule, Stream } from "effect"
import { Internal, isTutorialMarker, type StreamMessage } from "../src/StreamOffsets.ts"

const { makeOffsetTracker, selectUntilStop } = Internal

const N = 1_000_000, SIZE = 581
const body = new TextEncoder().encode("hello 12345")
const chunks: Array<Chunk.Chunk<StreamMessage>> = []
for (let o = 0; o < N; o += SIZE) chunks.push(Chunk.unsafeFromArray(Array.from({ length: Math.min(SIZE, N - o) }, (_, i) => ({ offset: BigInt(o + i), body }))))
const source = () => Stream.fromChunks(...chunks)
const counter = Metric.counter("x", { incremental: true })
const time = async (label: string, eff: Effect.Effect<unknown, unknown>) => {
  const best: Array<number> = []
  for (let i = 0; i < 5; i++) { const t = performance.now(); await Effect.runPromise(eff); best.push(performance.now() - t) }
  console.log(`${label.padEnd(40)} ${Math.min(...best).toFixed(1)} ms`)
}
const test = (m: StreamMessage, i: number) => (isTutorialMarker(m) ? "marker" as const : i + 1 >= N ? "count" as const : undefined)
await time("fromChunks runForEachChunk", Stream.runForEachChunk(source(), () => Effect.void))
await time("+ mapChunks", Stream.runForEachChunk(Stream.mapChunks(source(), (c) => c), () => Effect.void))
await time("+ retry", Stream.runForEachChunk(Stream.retry(Stream.mapChunks(source(), (c) => c), Schedule.recurs(3)), () => Effect.void))
await time("+ selectUntilStop", Stream.runForEachChunk(selectUntilStop(Stream.retry(Stream.mapChunks(source(), (c) => c), Schedule.recurs(3)), { stream: "bench", test }), () => Effect.void))
await time("+ tap metric", Stream.runForEachChunk(Stream.tap(selectUntilStop(Stream.retry(Stream.mapChunks(source(), (c) => c), Schedule.recurs(3)), { stream: "bench", test }), (s) => Metric.incrementBy(counter, s.messages.length)), () => Effect.void))
const tracker = await Effect.runPromise(makeOffsetTracker({ store: () => Effect.void, query: Effect.succeed(Option.none()), every: Infinity, confirmTimeout: Duration.seconds(5) }))
await time("+ runFoldEffect processSelection", Stream.runFoldEffect(Stream.tap(selectUntilStop(Stream.retry(Stream.mapChunks(source(), (c) => c), Schedule.recurs(3)), { stream: "bench", test }), (s) => Metric.incrementBy(counter, s.messages.length)), 0, (n, s) => Effect.suspend(() => { let i = s.firstIndex; for (const m of s.messages) tracker.processed(m.offset, ++i); return Effect.as(tracker.storeDue, n + 1) })))
