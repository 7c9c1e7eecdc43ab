/**
 * `send`: declares the stream with retention, publishes N messages (the last one is `marker`) and
 * exits only when the broker has confirmed every one.
 */
import { Console, Effect } from "effect"
import * as fs from "node:fs"
import process from "node:process"
import { Buffer } from "node:buffer"
import {
  brokerLayer,
  command,
  connectionFlags,
  flagReader,
  positiveInteger,
  progress,
  sourceOf,
  streamFlag,
  UsageError
} from "./cli.ts"
import {
  send,
  type SendError,
  type SendSummary,
  sendToSuperStream,
  type StreamBroker,
  tutorialMessages,
  validateName,
  validateRetention,
  validateStreamName,
  validateSuperStream
} from "./StreamOffsets.ts"

const flags = {
  ...streamFlag("stream to publish to"),
  "super-stream": {
    help: "publish to this super stream instead (partitions NAME-0 ... NAME-(N-1)); each message goes to the partition of its body's hash, a marker to every partition"
  },
  partitions: { help: "with --super-stream: the number of partitions when it is created (an existing one must have as many)", default: "3" },
  count: { env: "MESSAGE_COUNT", help: "messages to publish; the last one is \"marker\"", default: "100" },
  from: {
    help: "publish the lines of this file (- for stdin) instead, one message per line, as they are (no marker added)"
  },
  "max-length-bytes": { help: "stream retention: maximum size in bytes", default: "2000000000" },
  "max-age": { help: "stream retention: maximum age, e.g. 7D or 12h" },
  "initial-cluster-size": { help: "on a cluster: nodes holding the stream (leader and replicas) when it is created" },
  producer: {
    env: "RABBITMQ_STREAM_PRODUCER",
    help: "a producer name: the broker deduplicates, so running the same send again publishes only what is missing"
  },
  ...connectionFlags
}

/**
 * The lines of a file or stdin, as bytes (split at "\n" only, so any byte sequence but a newline
 * goes through as it is), read as they are needed: a large file is never held whole. Reading starts
 * at the first line asked for.
 */
async function* lines(from: string): AsyncGenerator<Uint8Array> {
  let rest: Buffer = Buffer.alloc(0)
  for await (const chunk of from === "-" ? process.stdin : fs.createReadStream(from)) {
    let data: Buffer = rest.length === 0 ? chunk as Buffer : Buffer.concat([rest, chunk as Buffer])
    for (let newline = data.indexOf(10); newline >= 0; newline = data.indexOf(10)) {
      yield data.subarray(0, newline)
      data = data.subarray(newline + 1)
    }
    rest = data
  }
  if (rest.length > 0) yield rest
}

function* counted<A>(messages: Iterable<A>, taken: { n: number }): Generator<A> {
  for (const message of messages) {
    taken.n++
    yield message
  }
}

async function* countedAsync<A>(messages: AsyncIterable<A>, taken: { n: number }): AsyncGenerator<A> {
  for await (const message of messages) {
    taken.n++
    yield message
  }
}

export const sendCommand = command(
  "send",
  "Publishes messages to a RabbitMQ stream and waits until every one is confirmed.",
  flags,
  (values) =>
    Effect.gen(function*() {
      const get = flagReader(flags, values)
      const integer = (name: keyof typeof flags & string, value: string) =>
        Effect.flatMap(sourceOf(flags, values, name), (label) => positiveInteger(label, value))
      const stream = (yield* get("stream"))!
      const superStream = values["super-stream"]
      if (superStream !== undefined && values.stream !== undefined) {
        return yield* new UsageError({ message: "--stream and --super-stream: choose one" })
      }
      if (superStream === undefined && values.partitions !== undefined) {
        return yield* new UsageError({ message: "--partitions is for --super-stream" })
      }
      const partitions = yield* integer("partitions", (yield* get("partitions"))!)
      const from = values.from
      if (from !== undefined && (values.count !== undefined)) {
        return yield* new UsageError({ message: "--from and --count: the lines of --from are the messages, choose one" })
      }
      if (from !== undefined && from !== "-" && !fs.existsSync(from)) {
        return yield* new UsageError({ message: `--from ${from}: no such file` })
      }
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
      if (superStream === undefined) yield* validateStreamName(stream)
      else yield* validateSuperStream(superStream, { partitions })
      yield* validateRetention(retention)
      if (producerName !== undefined) yield* validateName("producer name", producerName)
      const broker = yield* brokerLayer(values)
      yield* Console.log(
        from === undefined
          ? `Publishing ${count} ${count === 1 ? "message" : "messages"}...`
          : `Publishing the lines of ${from === "-" ? "stdin" : from}...`
      )
      // Counted as the workflow takes them, for the progress line on a terminal.
      const taken = { n: 0 }
      const messages = from === undefined ? counted(tutorialMessages(count), taken) : countedAsync(lines(from), taken)
      const publish: Effect.Effect<Omit<SendSummary, "stream">, SendError, StreamBroker> = superStream === undefined
        ? send({ stream, messages, producerName, retention })
        : Effect.tap(sendToSuperStream({ superStream, partitions, messages, producerName, retention }), (summary) =>
          Effect.forEach(summary.partitions, (p) => Console.log(`Partition ${p.stream}: ${p.sent} messages sent.`), {
            discard: true
          }))
      const summary = yield* Effect.scoped(Effect.zipRight(progress("messages handed to the broker", () => taken.n), publish))
        .pipe(Effect.provide(broker))
      if (summary.skipped > 0) {
        yield* Console.log(`Skipped ${summary.skipped} messages already published by producer "${producerName}".`)
      }
      if (from !== undefined) yield* Console.log(`Published ${summary.sent} messages.`)
      yield* Console.log(`Messages confirmed: ${summary.confirmed === summary.sent}.`)
    })
)

