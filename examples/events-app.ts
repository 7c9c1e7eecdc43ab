/**
 * An app that publishes events through one Producer, and knows each one is in the stream.
 *
 * - By default, `--fibers` request handlers (say) publish at once, each event confirmed before the
 *   handler goes on; the producer batches them into frames and numbers them.
 * - `--outbox`: the events come in order from an outbox (here, numbers 1 ... count), each with its
 *   own publishing id; killed and run again, the app publishes only what the broker does not have
 *   (the producer's name keeps the ids), so every event is in the stream once.
 *
 * The producer is named, so a broker restart or a lost connection under it loses and repeats
 * nothing: what was not confirmed is sent again, and the broker drops what it already had.
 *
 *   npm run example:events -- --stream events --count 100000 --fibers 50      (bun run, deno task)
 *   npm run example:events -- --stream events --count 100000 --outbox
 *
 * In your own project, import from "effect-stream-offsets" instead of "../src/StreamOffsets.ts", and
 * copy examples/run-main.ts beside it.
 */
import { Console, Effect, Stream } from "effect"
import { parseArgs } from "node:util"
import { DEFAULT_RETENTION, Producer, StreamBroker } from "../src/StreamOffsets.ts"
import { runMain } from "./run-main.ts"

const { values } = parseArgs({
  options: {
    stream: { type: "string", default: "events" },
    count: { type: "string", default: "1000" },
    fibers: { type: "string", default: "50" },
    outbox: { type: "boolean", default: false },
    name: { type: "string", default: "events-app" }
  }
})
const stream = values.stream!
const count = Number(values.count)
const fibers = Number(values.fibers)

const event = (id: number) => ({
  body: JSON.stringify({ type: "order.created", order: id, amount: id % 1000 }),
  properties: { messageId: `order-${id}`, contentType: "application/json" },
  applicationProperties: { type: "order.created" }
})

const app = Effect.gen(function*() {
  const producer = yield* Producer.make({ stream, name: values.name, retention: DEFAULT_RETENTION })
  yield* Console.log(`events-app: the broker has up to publishing id ${yield* producer.lastPublishingId}`)
  if (values.outbox) {
    // In order, each with its own id: what the broker has is skipped.
    const summary = yield* producer.publishAll(
      Stream.range(1, count).pipe(Stream.map((id) => ({ ...event(id), publishingId: BigInt(id) })))
    )
    yield* Console.log(`events-app: published ${summary.published}, skipped ${summary.skipped} (already in the stream)`)
    return
  }
  const next = { id: 0, published: 0 }
  const handler = Effect.gen(function*() {
    for (let id = ++next.id; id <= count; id = ++next.id) {
      yield* producer.publish(event(id))
      next.published++
    }
  })
  yield* Effect.all(Array.from({ length: fibers }, () => handler), { concurrency: "unbounded", discard: true })
  yield* Console.log(`events-app: published ${next.published} from ${fibers} fibers, each confirmed`)
})

runMain(Effect.scoped(app).pipe(Effect.provide(StreamBroker.layerConfig())))
