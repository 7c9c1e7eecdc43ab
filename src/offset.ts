/**
 * `offset`: where a consumer stands on a stream, without consuming: its stored offset (or none),
 * the stream's first and last offsets, and the lag.
 */
import { Console, Effect, Layer, Option } from "effect"
import {
  brokerLayer,
  command,
  consumerNameFlag,
  flagOrEnv,
  offsetStoreFlag,
  offsetStoreLayer,
  runMain,
  streamFlag,
  connectionFlags
} from "./cli.ts"
import { inspectOffset } from "./StreamOffsets.ts"

const flags = {
  ...streamFlag("stream to inspect"),
  ...consumerNameFlag("the consumer whose offset to show"),
  ...offsetStoreFlag,
  ...connectionFlags
} as const

const show = Option.match({ onNone: () => "none", onSome: (offset: bigint) => offset.toString() })

const main = command(
  "offset",
  "Shows a consumer's stored offset and the stream's first and last offsets, without consuming.",
  flags,
  (values) =>
    Effect.gen(function*() {
      const stream = Option.getOrThrow(yield* flagOrEnv(flags, values, "stream"))
      const consumerName = Option.getOrThrow(yield* flagOrEnv(flags, values, "name"))
      const broker = yield* brokerLayer(values)
      // Reading offsets creates nothing: a file store that is not there is a mistake.
      const offsets = yield* offsetStoreLayer(values["offset-store"], { readOnly: true })
      const report = yield* inspectOffset(stream, consumerName).pipe(
        Effect.provide(offsets.pipe(Layer.provideMerge(broker)))
      )
      yield* Console.log(`stream: ${report.stream}`)
      yield* Console.log(`consumer: ${report.consumerName}`)
      yield* Console.log(`stored offset: ${show(report.storedOffset)}`)
      yield* Console.log(`first offset: ${show(report.firstOffset)}`)
      yield* Console.log(`last offset: ${show(report.lastOffset)}`)
      yield* Console.log(`lag: ${show(report.lag)} offsets`)
    })
)

runMain(main)
