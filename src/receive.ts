/**
 * `receive`: resumes after the consumer's stored offset (or starts at the first message), consumes
 * until the marker, stores offsets as it goes, prints the first and last offsets and exits.
 */
import { Console, Effect, Layer, Option } from "effect"
import { brokerLayer, command, flagOrEnv, positiveInteger, runMain, uriFlag } from "./cli.ts"
import { OffsetStore, receive } from "./StreamOffsets.ts"

const flags = {
  stream: { env: "RABBITMQ_STREAM_NAME", help: "stream to consume", default: "stream-offset-tracking" },
  name: {
    env: "RABBITMQ_STREAM_CONSUMER_NAME",
    help: "the consumer's name: its offset is tracked under it",
    default: "offset-tracking-tutorial"
  },
  "store-every": { help: "store the offset after every N messages (and at the marker)", default: "10" },
  ...uriFlag
}

const showOffset = Option.match({ onNone: () => "none", onSome: (offset: bigint) => offset.toString() })

const main = command(
  "receive",
  "Consumes a RabbitMQ stream from where this consumer left off until the marker message.",
  flags,
  (values) =>
    Effect.gen(function*() {
      const stream = Option.getOrThrow(yield* flagOrEnv(flags, values, "stream"))
      const consumerName = Option.getOrThrow(yield* flagOrEnv(flags, values, "name"))
      const storeEvery = yield* positiveInteger(
        "store-every",
        Option.getOrThrow(yield* flagOrEnv(flags, values, "store-every"))
      )
      const layer = OffsetStore.layerServer.pipe(Layer.provideMerge(yield* brokerLayer(values.uri)))
      yield* Console.log("Started consuming...")
      const summary = yield* receive({
        stream,
        consumerName,
        storeEvery,
        onMessage: (_, index) => index === 0 ? Console.log("First message received.") : Effect.void
      }).pipe(Effect.provide(layer))
      yield* Console.log(
        `Done consuming, first offset ${showOffset(summary.firstOffset)}, last offset ${showOffset(summary.lastOffset)}.`
      )
      yield* Console.log(`Consumed ${summary.messages} messages.`)
    })
)

runMain(main)
