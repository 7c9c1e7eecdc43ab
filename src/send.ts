/**
 * `send`: declares the stream with retention, publishes N messages (the last one is `marker`) and
 * exits only when the broker has confirmed every one.
 */
import { Console, Effect, Option } from "effect"
import { brokerLayer, command, connectionFlags, flagOrEnv, positiveInteger, runMain, sourceOf, streamFlag } from "./cli.ts"
import { send, tutorialMessages, validateName, validateRetention, validateStreamName } from "./StreamOffsets.ts"

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
      const get = (name: keyof typeof flags) => Effect.map(flagOrEnv(flags, values, name), Option.getOrUndefined)
      const integer = (name: keyof typeof flags & string, value: string) =>
        Effect.flatMap(sourceOf(flags, values, name), (label) => positiveInteger(label, value))
      const stream = (yield* get("stream"))!
      const count = yield* integer("count", (yield* get("count"))!)
      const maxLengthBytes = yield* integer("max-length-bytes", (yield* get("max-length-bytes"))!)
      const clusterSize = values["initial-cluster-size"]
      const retention = {
        maxLengthBytes,
        maxAge: values["max-age"],
        initialClusterSize: clusterSize === undefined ? undefined : yield* integer("initial-cluster-size", clusterSize)
      }
      const producerName = yield* get("producer")
      // Everything checked before anything is printed or connected.
      yield* validateStreamName(stream)
      yield* validateRetention(retention)
      if (producerName !== undefined) yield* validateName("producer name", producerName)
      const broker = yield* brokerLayer(values)
      yield* Console.log(`Publishing ${count} ${count === 1 ? "message" : "messages"}...`)
      const summary = yield* send({
        stream,
        messages: tutorialMessages(count),
        producerName,
        retention
      }).pipe(Effect.provide(broker))
      if (summary.skipped > 0) {
        yield* Console.log(`Skipped ${summary.skipped} messages already published by producer "${producerName}".`)
      }
      yield* Console.log(`Messages confirmed: ${summary.confirmed === summary.sent}.`)
    })
)

runMain(main)
