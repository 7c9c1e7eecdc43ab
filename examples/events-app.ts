/**
 * An app that publishes events through one Producer, and knows each one is in the stream.
 *
 * - By default, `--fibers` request handlers (say) publish at once, each event confirmed before the
 *   handler goes on; the producer batches them into frames and numbers them.
 * - `--outbox`: the events come in order from an outbox (here, numbers 1 ... count), each with its
 *   own publishing id; killed and run again, the app publishes only what the broker does not have
 *   (the producer's name keeps the ids), so every event is in the stream once.
 *
 * - `--consume`: reads the events back as values of their Schema (a body that is not one stops it,
 *   naming its offset), and prints what they add up to.
 *
 * Events are values of a Schema, published as JSON. The producer is named, so a broker restart or a
 * lost connection under it loses and repeats nothing: what was not confirmed is sent again, and the
 * broker drops what it already had.
 *
 *   npm run example:events -- --stream events --count 100000 --fibers 50      (bun run, deno task)
 *   npm run example:events -- --stream events --count 100000 --outbox
 *   npm run example:events -- --stream events --consume
 *
 * In your own project, import from "effect-stream-offsets" instead of "../src/StreamOffsets.ts", and
 * copy examples/run-main.ts beside it.
 */
import { Console, Effect, Layer, Schema, Stream } from "effect"
import { parseArgs } from "node:util"
import { consume, DEFAULT_RETENTION, OffsetStore, Producer, StreamBroker } from "../src/StreamOffsets.ts"
import { runMain } from "./run-main.ts"

const { values } = parseArgs({
  options: {
    stream: { type: "string", default: "events" },
    count: { type: "string", default: "1000" },
    fibers: { type: "string", default: "50" },
    outbox: { type: "boolean", default: false },
    consume: { type: "boolean", default: false },
    name: { type: "string", default: "events-app" }
  }
})
const stream = values.stream!
const count = Number(values.count)
const fibers = Number(values.fibers)

/** What the app publishes and reads: its events are values, checked both ways. */
const OrderCreated = Schema.Struct({
  type: Schema.Literal("order.created"),
  order: Schema.Int.pipe(Schema.positive()),
  amount: Schema.Number
})

const event = (id: number) =>
  Producer.message(
    { type: "order.created" as const, order: id, amount: id % 1000 },
    { properties: { messageId: `order-${id}` }, applicationProperties: { type: "order.created" } }
  )

/** Reads every event back, typed, to the end of the stream. */
const readBack = Effect.gen(function*() {
  const totals = yield* consume({ stream, consumerName: `${values.name}-reader`, schema: OrderCreated, stop: { untilEnd: true } }).pipe(
    // Committed one by one here; a real app commits after its own work is done.
    Stream.tap((message) => message.commit),
    Stream.runFold({ events: 0, amount: 0 }, (sum, message) => ({
      events: sum.events + 1,
      amount: sum.amount + message.value.amount
    }))
  )
  yield* Console.log(`events-app: read ${totals.events} events, amount ${totals.amount}`)
})

const app = Effect.gen(function*() {
  if (values.consume) return yield* readBack
  const producer = yield* Producer.make({ stream, name: values.name, retention: DEFAULT_RETENTION, schema: OrderCreated })
  yield* Console.log(`events-app: the broker has up to publishing id ${yield* producer.lastPublishingId}`)
  if (values.outbox) {
    // In order, each with its own id: what the broker has is skipped.
    const summary = yield* producer.publishAll(
      Stream.range(1, count).pipe(
        Stream.map((id) => {
          const { sections, value } = event(id)
          return Producer.message(value, { ...sections, publishingId: BigInt(id) })
        })
      )
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

runMain(Effect.scoped(app).pipe(Effect.provide(OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerConfig())))))
