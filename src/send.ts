/**
 * `send`: declares the stream with retention, publishes N messages (the last one is `marker`) and
 * exits only when the broker has confirmed every one.
 */
import { Console, Data, Effect, Either, Metric } from "effect"
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
  repeatedFlag,
  sourceOf,
  streamFlag,
  UsageError
} from "./cli.ts"
import {
  isTutorialMarker,
  messageFromJson,
  messagesConfirmed,
  type OutgoingMessage,
  send,
  type Sendable,
  type SendError,
  type SendSummary,
  sendToSuperStream,
  type StreamBroker,
  tutorialMessages,
  validateSendOptions,
  validateSuperStreamSendOptions
} from "./StreamOffsets.ts"

/** A send that failed part-way: the broker's error, and how many messages were confirmed. */
class SendStopped extends Data.TaggedError("SendStopped")<{ readonly message: string }> {}

/** The flags of `send` (docs/cli.md's table is generated from them: scripts/cli-docs.ts). */
export const sendFlags = {
  ...streamFlag("stream to publish to"),
  "super-stream": {
    help: "publish to this super stream instead (partitions NAME-0 ... NAME-(N-1)); each message goes to the partition of its body's hash, a marker to every partition"
  },
  partitions: { help: "with --super-stream: the number of partitions when it is created (an existing one must have as many)", default: "3" },
  count: { env: "MESSAGE_COUNT", help: "messages to publish: hello 0 ... hello N-2, then marker", default: "100" },
  from: {
    help: "publish the lines of this file (- for stdin) instead, one message per line, as they are (no marker added)"
  },
  json: {
    help:
      "with --from: each line is a message as receive --json prints it (body, encoding, properties, applicationProperties, messageAnnotations, header, amqpValue, filterValue)",
    boolean: true
  },
  "skip-bad-lines": { help: "with --json: skip a line that is not a message (said on stderr) instead of stopping there", boolean: true },
  property: { help: "an application property KEY=VALUE (a string) on every message; repeat it for more", repeated: true },
  "filter-value": { help: "the filter value of every message, for consumers that filter (RabbitMQ 3.13+)" },
  "sub-entry-size": { help: "sub-entry batching: this many messages per entry of the stream (and per publishing id)", default: "1" },
  compression: { help: "sub-entry batches: none or gzip", default: "none" },
  "max-length-bytes": { help: "stream retention: maximum size in bytes", default: "2000000000" },
  "max-age": { help: "stream retention: maximum age, e.g. 7D or 12h" },
  "initial-cluster-size": { help: "on a cluster: nodes holding the stream (leader and replicas) when it is created" },
  producer: {
    env: "RABBITMQ_STREAM_PRODUCER",
    help: "a producer name: the broker deduplicates, so running the same send again publishes only what is missing"
  },
  ...connectionFlags
} as const

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

/** Why `--json` stopped reading: the first line that is not a message (unless --skip-bad-lines). */
interface BadLine {
  error?: UsageError
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * The messages of JSON lines (`receive --json`'s format). A line that is not one ends the messages
 * there (what came before is still published) and is kept in `bad`, or with `skip` is said on
 * stderr and passed over. Blank lines are passed over.
 */
async function* jsonLines(from: string, options: { readonly skip: boolean; readonly bad: BadLine }): AsyncGenerator<OutgoingMessage> {
  let number = 0
  for await (const bytes of lines(from)) {
    number++
    const parsed = Either.try(() => {
      const text = strictUtf8.decode(bytes)
      return text.trim() === "" ? undefined : JSON.parse(text) as unknown
    })
    const message = Either.isLeft(parsed)
      ? Either.left(errorText(parsed.left))
      : parsed.right === undefined
      ? undefined
      : Either.mapLeft(messageFromJson(parsed.right), (e) => e.message)
    if (message === undefined) continue
    if (Either.isRight(message)) {
      yield message.right
      continue
    }
    const where = `line ${number} of ${from === "-" ? "stdin" : from}`
    if (options.skip) {
      process.stderr.write(`warning: ${where} skipped: ${message.left}\n`)
      continue
    }
    options.bad.error = new UsageError({ message: `${where} is not a message: ${message.left} (nothing after it was published; --skip-bad-lines passes over such lines)` })
    return
  }
}

const errorText = (error: unknown) => (error instanceof SyntaxError ? `not JSON (${error.message})` : error instanceof TypeError ? "not UTF-8" : String(error))

/** The tutorial's marker goes to every partition of a super stream, so that each one ends with it. */
const toEveryPartition = (body: Uint8Array) => isTutorialMarker({ offset: 0n, body })

/** `--property KEY=VALUE`s as application properties. */
const propertiesOf = (pairs: ReadonlyArray<string>): Effect.Effect<Record<string, string> | undefined, UsageError> =>
  Effect.gen(function*() {
    if (pairs.length === 0) return undefined
    const properties: Record<string, string> = {}
    for (const pair of pairs) {
      const eq = pair.indexOf("=")
      if (eq <= 0) return yield* new UsageError({ message: `--property must be KEY=VALUE, got "${pair}"` })
      Object.defineProperty(properties, pair.slice(0, eq), { value: pair.slice(eq + 1), enumerable: true, writable: true, configurable: true })
    }
    return properties
  })

/** Each message with the flags' application properties (its own win) and filter value (its own wins). */
const decorate = (
  properties: Record<string, string> | undefined,
  filterValue: string | undefined
) =>
(message: Sendable): Sendable => {
  if (properties === undefined && filterValue === undefined) return message
  const m: OutgoingMessage = typeof message === "string" || message instanceof Uint8Array ? { body: message } : message
  return {
    ...m,
    ...(properties === undefined ? {} : { applicationProperties: { ...properties, ...m.applicationProperties } }),
    ...(filterValue === undefined || m.filterValue !== undefined ? {} : { filterValue })
  }
}

function* mapped<A, B>(messages: Iterable<A>, f: (a: A) => B): Generator<B> {
  for (const message of messages) yield f(message)
}

async function* mappedAsync<A, B>(messages: AsyncIterable<A>, f: (a: A) => B): AsyncGenerator<B> {
  for await (const message of messages) yield f(message)
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
  sendFlags,
  (values) =>
    Effect.gen(function*() {
      const get = flagReader(sendFlags, values)
      const integer = (name: keyof typeof sendFlags & string, value: string) =>
        Effect.flatMap(sourceOf(sendFlags, values, name), (label) => positiveInteger(label, value))
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
      const json = values.json === "true"
      if (json && from === undefined) return yield* new UsageError({ message: "--json reads messages from --from: give --from FILE (or - for stdin)" })
      if (values["skip-bad-lines"] !== undefined && !json) return yield* new UsageError({ message: "--skip-bad-lines is for --json" })
      const properties = yield* propertiesOf(repeatedFlag(values.property))
      const filterValue = values["filter-value"]
      const subEntrySize = yield* integer("sub-entry-size", (yield* get("sub-entry-size"))!)
      if (subEntrySize > 65_535) return yield* new UsageError({ message: `--sub-entry-size must be at most 65535, got ${subEntrySize}` })
      const compression = (yield* get("compression"))!
      if (compression !== "none" && compression !== "gzip") {
        return yield* new UsageError({ message: `--compression must be none or gzip, got "${compression}"` })
      }
      if (compression === "gzip" && subEntrySize === 1) return yield* new UsageError({ message: "--compression gzip applies to sub-entry batches: give --sub-entry-size N (N > 1) with it" })
      if (filterValue !== undefined && subEntrySize > 1) {
        return yield* new UsageError({ message: "--filter-value and --sub-entry-size: sub-entry batches cannot carry filter values, choose one" })
      }
      if (filterValue !== undefined) yield* Either.mapLeft(messageFromJson({ body: "", filterValue }), (e) => new UsageError({ message: `--filter-value: ${e.message}` }))
      // Everything checked before anything is printed or connected.
      yield* superStream === undefined
        ? validateSendOptions({ stream, messages: [], retention, producerName })
        : validateSuperStreamSendOptions({ superStream, partitions, messages: [], retention, producerName })
      const broker = yield* brokerLayer(values)
      yield* Console.log(
        from === undefined
          ? `Publishing ${count} ${count === 1 ? "message" : "messages"}...`
          : `Publishing the lines of ${from === "-" ? "stdin" : from}...`
      )
      // Counted as the workflow takes them, for the progress line on a terminal.
      const taken = { n: 0 }
      const bad: BadLine = {}
      const decorated = decorate(properties, filterValue)
      const messages = from === undefined
        ? counted(mapped(tutorialMessages(count), decorated), taken)
        : countedAsync(mappedAsync<Sendable, Sendable>(json ? jsonLines(from, { skip: values["skip-bad-lines"] === "true", bad }) : lines(from), decorated), taken)
      const publishing = { producerName, retention, subEntrySize, compression } as const
      const publish: Effect.Effect<Omit<SendSummary, "stream">, SendError, StreamBroker> = superStream === undefined
        ? send({ stream, messages, ...publishing })
        : Effect.tap(sendToSuperStream({ superStream, partitions, messages, toEveryPartition, ...publishing }), (summary) =>
          Effect.forEach(summary.partitions, (p) => Console.log(`Partition ${p.stream}: ${p.sent} messages sent.`), {
            discard: true
          }))
      const confirmedBefore = (yield* Metric.value(messagesConfirmed)).count
      const summary = yield* Effect.scoped(Effect.zipRight(progress("messages handed to the broker", () => taken.n), publish))
        .pipe(
          Effect.provide(broker),
          // What stopped it, and how far it got (bad input keeps its own line and exit code).
          Effect.catchIf((error) => error._tag !== "InvalidArgument" && taken.n > 0, (error) =>
            Effect.flatMap(Metric.value(messagesConfirmed), ({ count }) =>
              Effect.fail(
                new SendStopped({
                  message: `${error.message}; ${count - confirmedBefore} of the ${taken.n} messages read were confirmed${
                    producerName === undefined
                      ? ""
                      : ` (the same send with --producer ${producerName} publishes only what the broker lacks)`
                  }`
                })
              )))
        )
      if (summary.skipped > 0) {
        yield* Console.log(`Skipped ${summary.skipped} messages already published by producer "${producerName}".`)
      }
      if (from !== undefined) yield* Console.log(`Published ${summary.sent} messages.`)
      yield* Console.log(`Messages confirmed: ${summary.confirmed === summary.sent}.`)
      // What came before a bad line is published; then the line is the error (exit 2).
      if (bad.error !== undefined) return yield* Effect.fail(bad.error)
    })
)

