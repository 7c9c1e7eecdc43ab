/**
 * A larger Effect app that embeds the consumer: "store offsets with your data".
 *
 * Each message of the stream is an order; the app writes it into its own store (a directory of
 * files through @effect/platform's KeyValueStore) and the consumer's offset lives in the same
 * store, written only after the app's write succeeded. A reporter fiber runs beside the consumer.
 * Ctrl-C (SIGINT) or SIGTERM interrupts the app: the consumer stores the offset of the last order
 * written, the app prints what it did and exits 0. Run it again: it resumes after that order.
 *
 *   npm run example -- --stream orders --dir ./orders-data      (bun run example, deno task example)
 *
 * In your own project, import from "effect-stream-offsets" instead of "../src/StreamOffsets.ts", and
 * copy examples/run-main.ts (Ctrl-C under `bun run` and `deno task`) beside it.
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { runMain } from "./run-main.ts"
import { Console, Effect, Layer, Ref, Schedule } from "effect"
import { parseArgs } from "node:util"
import { bodyText, OffsetStore, receive, StreamBroker, TrackingStrategy } from "../src/StreamOffsets.ts"

const { values } = parseArgs({
  options: { stream: { type: "string", default: "orders" }, dir: { type: "string", default: "./orders-data" } }
})
const stream = values.stream!
const dir = values.dir!

const app = Effect.gen(function*() {
  const orders = yield* KeyValueStore.KeyValueStore
  const written = yield* Ref.make(0)

  // The app's own work: write the order, keyed by its offset (writing it twice is harmless).
  const writeOrder = (offset: bigint, body: string) =>
    Effect.zipRight(orders.set(`order-${offset}`, body), Ref.update(written, (n) => n + 1))

  // Another fiber of the app: report progress every second.
  const reporter = Ref.get(written).pipe(
    Effect.flatMap((n) => Console.log(`processed ${n} orders`)),
    Effect.repeat(Schedule.spaced("1 second"))
  )

  yield* Console.log(`orders-app: consuming "${stream}" into ${dir}`)
  yield* Effect.fork(reporter)
  yield* receive({
    stream,
    consumerName: "orders-app",
    // Store the offset after every 5 orders written, and always when stopping.
    tracking: TrackingStrategy.Manual({ every: 5 }),
    stop: { marker: false }, // runs until interrupted
    onMessage: (message) => writeOrder(message.offset, bodyText(message))
  }).pipe(
    Effect.ensuring(
      Effect.flatMap(Ref.get(written), (n) => Console.log(`orders-app: stopped after ${n} orders; offset stored`))
    )
  )
})

// One layer graph, provided once: the broker connection, the app's store, and the offset store on it.
const store = KeyValueStore.layerFileSystem(dir).pipe(Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer)))
const layer = Layer.mergeAll(StreamBroker.layerConfig(), OffsetStore.layerKeyValueStore.pipe(Layer.provideMerge(store)))

runMain(app.pipe(Effect.provide(layer)))
