/**
 * The consumer as a Stream: messages in batches into a sink, each batch committed once written.
 *
 * The stream's messages are appended to a JSON-lines file (standing in for a warehouse table) in
 * batches of up to 500, or whatever came within a second (`Stream.groupedWithin`). Once a batch is
 * written, its last message is committed: the stored offset never runs ahead of what is in the
 * file. A crash between the write and the commit delivers that batch again on the next run (at
 * least once): each line carries its offset, so a reader can drop a repeat. It stops at the end of
 * the stream as it was at the start (`--until-end`), or on Ctrl-C / SIGTERM; either way the
 * offset of the last batch written is stored, and the next run resumes after it.
 *
 *   npm run example:batches -- --stream events --out ./events.jsonl --until-end
 *   (bun run example:batches ..., deno task example:batches ...)
 *
 * In your own project, import from "effect-stream-offsets" instead of "../src/StreamOffsets.ts", and
 * copy examples/run-main.ts (Ctrl-C under `bun run` and `deno task`) beside it.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { runMain } from "./run-main.ts"
import { Chunk, Console, Effect, Layer, Ref, Stream } from "effect"
import { parseArgs } from "node:util"
import { bodyText, consume, type ConsumedMessage, OffsetStore, StreamBroker, TrackingStrategy } from "../src/StreamOffsets.ts"

const { values } = parseArgs({
  options: {
    stream: { type: "string", default: "events" },
    out: { type: "string", default: "./events.jsonl" },
    "until-end": { type: "boolean", default: false }
  }
})
const stream = values.stream!
const out = values.out!

const app = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const totals = yield* Ref.make({ messages: 0, batches: 0 })

  const writeBatch = (batch: Chunk.Chunk<ConsumedMessage>) =>
    fs.writeFileString(
      out,
      Chunk.join(Chunk.map(batch, (m) => JSON.stringify({ offset: String(m.offset), body: bodyText(m) }) + "\n"), ""),
      { flag: "a" }
    )

  yield* consume({
    stream,
    consumerName: "warehouse",
    // Every commit stores: one store per batch (commits are per batch, not per message).
    tracking: TrackingStrategy.Manual({ every: 1 }),
    stop: { marker: false, untilEnd: values["until-end"] }
  }).pipe(
    Stream.groupedWithin(500, "1 second"),
    Stream.mapEffect((batch) =>
      writeBatch(batch).pipe(
        Effect.zipRight(Chunk.unsafeLast(batch).commit),
        Effect.zipRight(Ref.update(totals, (t) => ({ messages: t.messages + batch.length, batches: t.batches + 1 })))
      )
    ),
    Stream.runDrain,
    Effect.ensuring(
      Effect.flatMap(Ref.get(totals), (t) => Console.log(`batch-sink: wrote ${t.messages} messages in ${t.batches} batches to ${out}`))
    )
  )
})

const layer = Layer.mergeAll(
  OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerConfig())),
  NodeFileSystem.layer
)

runMain(app.pipe(Effect.provide(layer)))
