/**
 * `send`: declares the stream with retention, publishes N messages (the last one is `marker`) and
 * exits only when the broker has confirmed every one.
 */
import { Console, Effect, Option } from "effect"
import { brokerLayer, command, flagOrEnv, positiveInteger, runMain, streamFlag, connectionFlags } from "./cli.ts"
import { send, tutorialMessages } from "./StreamOffsets.ts"

const flags = {
  ...streamFlag("stream to publish to"),
  count: { env: "MESSAGE_COUNT", help: "messages to publish; the last one is \"marker\"", default: "100" },
  "max-length-bytes": { help: "stream retention: maximum size in bytes", default: "2000000000" },
  "max-age": { help: "stream retention: maximum age, e.g. 7D or 12h" },
  "initial-cluster-size": { help: "on a cluster: nodes holding the stream (leader and replicas) when it is created" },
  producer: {
    env: "RABBITMQ_STREAM_PRODUCER",
    help: "a producer name: the broker deduplicates, so running the same send again publishes only what is missing"
  },
  ...connectionFlags
}

const main = command(
  "send",
  "Publishes messages to a RabbitMQ stream and waits until every one is confirmed.",
  flags,
  (values) =>
    Effect.gen(function*() {
      const stream = Option.getOrThrow(yield* flagOrEnv(flags, values, "stream"))
      const count = yield* positiveInteger("count", Option.getOrThrow(yield* flagOrEnv(flags, values, "count")))
      const maxLengthBytes = yield* positiveInteger(
        "max-length-bytes",
        Option.getOrThrow(yield* flagOrEnv(flags, values, "max-length-bytes"))
      )
      const maxAge = values["max-age"]
      const clusterSize = values["initial-cluster-size"]
      const initialClusterSize = clusterSize === undefined ? undefined : yield* positiveInteger("initial-cluster-size", clusterSize)
      const broker = yield* brokerLayer(values)
      yield* Console.log(`Publishing ${count} messages...`)
      const producerName = Option.getOrUndefined(yield* flagOrEnv(flags, values, "producer"))
      const summary = yield* send({
        stream,
        messages: tutorialMessages(count),
        ...(producerName !== undefined ? { producerName } : {}),
        retention: { maxLengthBytes, maxAge, initialClusterSize }
      }).pipe(Effect.provide(broker))
      if (summary.skipped > 0) {
        yield* Console.log(`Skipped ${summary.skipped} messages already published by producer "${producerName}".`)
      }
      yield* Console.log(`Messages confirmed: ${summary.confirmed === summary.sent}.`)
    })
)

runMain(main)
