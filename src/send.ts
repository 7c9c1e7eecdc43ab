/**
 * `send`: declares the stream with retention, publishes N messages (the last one is `marker`) and
 * exits only when the broker has confirmed every one.
 */
import { Console, Data, Effect, Either, Layer, Metric, MetricState, Option } from "effect"
import * as fs from "node:fs"
import process from "node:process"
import { Buffer } from "node:buffer"
import {
  brokerLayer,
  choice,
  connectionFlags,
  telemetryFlags,
  telemetryLayer,
  defaultFlag,
  explicitFlag,
  optionalFlag,
  type Parse,
  positiveInteger,
  progress,
  repeatedFlag,
  streamFlag,
  subcommand,
  switchFlag,
  text,
  UsageError,
  type Values
} from "./cli.ts"
import {
  isTutorialMarker,
  messageFromJson,
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

/** At most 65535 messages per sub-entry batch (the protocol's field is 16 bits). */
const subEntrySize: Parse<number> = (value, source) =>
  Either.flatMap(positiveInteger(value, source), (n) =>
    n > 65_535 ? Either.left(new UsageError({ message: `${source} must be at most 65535, got ${n}` })) : Either.right(n))

/** `--property KEY=VALUE`. */
const property: Parse<readonly [string, string]> = (pair, source) => {
  const eq = pair.indexOf("=")
  return eq <= 0
    ? Either.left(new UsageError({ message: `${source} must be KEY=VALUE, got "${pair}"` }))
    : Either.right([pair.slice(0, eq), pair.slice(eq + 1)])
}

/** The flags of `send` (docs/cli.md's table is generated from them: scripts/cli-docs.ts). */
export const sendFlags = {
  ...streamFlag("stream to publish to"),
  "super-stream": optionalFlag({
    help: "publish to this super stream instead (partitions NAME-0 ... NAME-(N-1)); each message goes to the partition of its body's hash, a marker to every partition"
  }, text),
  partitions: explicitFlag(
    { help: "with --super-stream: the number of partitions when it is created (an existing one must have as many)", default: "3" },
    positiveInteger
  ),
  count: explicitFlag(
    { env: "MESSAGE_COUNT", help: "messages to publish: hello 0 ... hello N-2, then marker", default: "100" },
    positiveInteger
  ),
  from: optionalFlag({
    help: "publish the lines of this file (- for stdin) instead, one message per line, as they are (no marker added)"
  }, text),
  json: switchFlag(
    "with --from: each line is a message as receive --json prints it (body, encoding, properties, applicationProperties, messageAnnotations, header, amqpValue, filterValue)"
  ),
  "skip-bad-lines": switchFlag("with --json: skip a line that is not a message (said on stderr) instead of stopping there"),
  property: repeatedFlag("an application property KEY=VALUE (a string) on every message; repeat it for more", property),
  "filter-value": optionalFlag({ help: "the filter value of every message, for consumers that filter (RabbitMQ 3.13+)" }, text),
  "sub-entry-size": defaultFlag(
    { help: "sub-entry batching: this many messages per entry of the stream (and per publishing id)", default: "1" },
    subEntrySize
  ),
  compression: defaultFlag({ help: "sub-entry batches: none or gzip", default: "none" }, choice(["none", "gzip"])),
  "max-length-bytes": defaultFlag({ help: "stream retention: maximum size in bytes", default: "2000000000" }, positiveInteger),
  "max-age": optionalFlag({ help: "stream retention: maximum age, e.g. 7D or 12h" }, text),
  "initial-cluster-size": optionalFlag(
    { help: "on a cluster: nodes holding the stream (leader and replicas) when it is created" },
    positiveInteger
  ),
  producer: optionalFlag({
    env: "RABBITMQ_STREAM_PRODUCER",
    help: "a producer name: the broker deduplicates, so running the same send again publishes only what is missing"
  }, text),
  ...connectionFlags,
  ...telemetryFlags
}

type SendValues = Values<typeof sendFlags>

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

/** The `--property` pairs as application properties (none without any). */
const propertiesOf = (pairs: ReadonlyArray<readonly [string, string]>): Record<string, string> | undefined => {
  if (pairs.length === 0) return undefined
  const properties: Record<string, string> = {}
  // defineProperty: a key such as __proto__ is a property like any other.
  for (const [key, value] of pairs) {
    Object.defineProperty(properties, key, { value, enumerable: true, writable: true, configurable: true })
  }
  return properties
}

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

/**
 * The rules between the flags of `send`, and the library's checks of names and retention: all of
 * them before anything is printed or connected. The retention the stream gets.
 */
const checked = (values: SendValues) =>
  Effect.gen(function*() {
    const superStream = Option.getOrUndefined(values["super-stream"])
    const from = Option.getOrUndefined(values.from)
    const filterValue = Option.getOrUndefined(values["filter-value"])
    const subEntries = values["sub-entry-size"]
    const fail = (message: string) => Effect.fail(new UsageError({ message }))
    if (superStream !== undefined && values.stream.onCommandLine) yield* fail("--stream and --super-stream: choose one")
    if (superStream === undefined && values.partitions.onCommandLine) yield* fail("--partitions is for --super-stream")
    if (from !== undefined && values.count.onCommandLine) {
      yield* fail("--from and --count: the lines of --from are the messages, choose one")
    }
    if (from !== undefined && from !== "-" && !fs.existsSync(from)) yield* fail(`--from ${from}: no such file`)
    if (values.json && from === undefined) yield* fail("--json reads messages from --from: give --from FILE (or - for stdin)")
    if (values["skip-bad-lines"] && !values.json) yield* fail("--skip-bad-lines is for --json")
    if (values.compression === "gzip" && subEntries === 1) {
      yield* fail("--compression gzip applies to sub-entry batches: give --sub-entry-size N (N > 1) with it")
    }
    if (filterValue !== undefined && subEntries > 1) {
      yield* fail("--filter-value and --sub-entry-size: sub-entry batches cannot carry filter values, choose one")
    }
    if (filterValue !== undefined) {
      yield* Either.mapLeft(messageFromJson({ body: "", filterValue }), (e) => new UsageError({ message: `--filter-value: ${e.message}` }))
    }
    const retention = {
      maxLengthBytes: values["max-length-bytes"],
      maxAge: Option.getOrUndefined(values["max-age"]),
      initialClusterSize: Option.getOrUndefined(values["initial-cluster-size"])
    }
    const producerName = Option.getOrUndefined(values.producer)
    yield* superStream === undefined
      ? validateSendOptions({ stream: values.stream.value, messages: [], retention, producerName })
      : validateSuperStreamSendOptions({ superStream, partitions: values.partitions.value, messages: [], retention, producerName })
    return retention
  })

/** Publishes what the flags say, saying how it went (a send that failed part-way says how far it got). */
/** Messages confirmed in this process, over every stream, partition and producer (each a tag set of its own). */
const confirmedSoFar = Effect.map(Metric.snapshot, (pairs) =>
  pairs.reduce((sum, { metricKey, metricState }) =>
    metricKey.name === "stream_offsets_messages_confirmed" && MetricState.isCounterState(metricState)
      ? sum + Number(metricState.count)
      : sum, 0))

const sendWith = (values: SendValues) =>
  Effect.gen(function*() {
    const retention = yield* checked(values)
    const telemetry = yield* telemetryLayer("stream-offsets-send", values)
    const broker = yield* brokerLayer(values)
    const superStream = Option.getOrUndefined(values["super-stream"])
    const from = Option.getOrUndefined(values.from)
    const producerName = Option.getOrUndefined(values.producer)
    const count = values.count.value
    yield* Console.log(
      from === undefined
        ? `Publishing ${count} ${count === 1 ? "message" : "messages"}...`
        : `Publishing the lines of ${from === "-" ? "stdin" : from}...`
    )
    // Counted as the workflow takes them, for the progress line on a terminal.
    const taken = { n: 0 }
    const bad: BadLine = {}
    const decorated = decorate(propertiesOf(values.property), Option.getOrUndefined(values["filter-value"]))
    const messages = from === undefined
      ? counted(mapped(tutorialMessages(count), decorated), taken)
      : countedAsync(mappedAsync<Sendable, Sendable>(values.json ? jsonLines(from, { skip: values["skip-bad-lines"], bad }) : lines(from), decorated), taken)
    const publishing = { producerName, retention, subEntrySize: values["sub-entry-size"], compression: values.compression } as const
    const publish: Effect.Effect<Omit<SendSummary, "stream">, SendError, StreamBroker> = superStream === undefined
      ? send({ stream: values.stream.value, messages, ...publishing })
      : Effect.tap(
        sendToSuperStream({ superStream, partitions: values.partitions.value, messages, toEveryPartition, ...publishing }),
        (summary) =>
          Effect.forEach(summary.partitions, (p) => Console.log(`Partition ${p.stream}: ${p.sent} messages sent.`), {
            discard: true
          })
      )
    const confirmedBefore = yield* confirmedSoFar
    const summary = yield* Effect.scoped(Effect.zipRight(progress("messages handed to the broker", () => taken.n), publish))
      .pipe(
        Effect.provide(Layer.merge(broker, telemetry)),
        // What stopped it, and how far it got (bad input keeps its own line and exit code).
        Effect.catchIf((error) => error._tag !== "InvalidArgument" && taken.n > 0, (error) =>
          Effect.flatMap(confirmedSoFar, (count) =>
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

export const sendCommand = subcommand(
  "send",
  sendFlags,
  "Publishes messages to a RabbitMQ stream and waits until every one is confirmed.",
  sendWith
)
