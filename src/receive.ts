/**
 * `receive`: resumes after the consumer's stored offset (or starts at --offset), consumes until a
 * stop condition (the marker by default), stores offsets by the tracking strategy and at the stop,
 * prints the first and last offsets and exits. SIGINT/SIGTERM stop it cleanly: offset stored,
 * summary printed, exit 0.
 */
import { Console, Data, Effect, Either, Layer, Option } from "effect"
import {
  brokerLayer,
  choice,
  connectionFlags,
  telemetryFlags,
  telemetryLayer,
  consumerNameFlag,
  dataLine,
  defaultFlag,
  duration,
  explicitFlag,
  offsetStoreFlag,
  offsetStoreLayer,
  optionalFlag,
  type Parse,
  positiveInteger,
  progress,
  showOffset,
  statusLine,
  stopSignal,
  streamFlag,
  subcommand,
  switchFlag,
  text,
  UsageError,
  type Values
} from "./cli.ts"
import {
  bodyText,
  type ConsumeError,
  messageToJson,
  type OffsetStore,
  type PartitionMessage,
  type StreamBroker,
  receive,
  receiveSuperStream,
  type ReceiveSummary,
  type SuperStreamReceiveSummary,
  validateConsumeOptions,
  validateSuperStreamConsumeOptions,
  StartPosition,
  type StopConditions,
  type StreamMessage,
  TrackingStrategy
} from "./StreamOffsets.ts"

/** Where to start when no offset is stored. */
const startPosition: Parse<StartPosition> = (value, source) => {
  if (value === "first") return Either.right(StartPosition.First())
  if (value === "last") return Either.right(StartPosition.Last())
  if (value === "next") return Either.right(StartPosition.Next())
  if (/^[0-9]+$/.test(value)) return Either.right(StartPosition.Offset({ offset: BigInt(value) }))
  const date = new Date(value)
  return /^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(date.getTime())
    ? Either.right(StartPosition.Timestamp({ date }))
    : Either.left(
      new UsageError({ message: `${source} must be first, last, next, an offset or an ISO timestamp, got "${value}"` })
    )
}

/** Filter values, separated by commas. */
const filterValues: Parse<ReadonlyArray<string>> = (value, source) => {
  const values = value.split(",")
  return values.some((v) => v === "")
    ? Either.left(new UsageError({ message: `${source} takes filter values separated by commas, got "${value}"` }))
    : Either.right(values)
}

/** The flags of `receive` (docs/cli.md's table is generated from them: scripts/cli-docs.ts). */
export const receiveFlags = {
  ...streamFlag("stream to consume"),
  "super-stream": optionalFlag({
    help:
      "consume this super stream instead: every partition, offsets per partition; the marker and --until-end hold per partition, --count and --idle-timeout for all"
  }, text),
  ...consumerNameFlag("the consumer's name: its offset is tracked under it"),
  offset: defaultFlag({
    help:
      "where to start when no offset is stored: first, last (the start of the last chunk the broker wrote: it may hold many messages), next (only messages written from now on), an offset, or an ISO timestamp",
    default: "first"
  }, startPosition),
  "ignore-stored": switchFlag("start at --offset even when an offset is stored"),
  tracking: defaultFlag({
    help: "when offsets are stored: manual (every N), auto (every N and every interval), none (only at the stop)",
    default: "manual"
  }, choice(["manual", "auto", "none"])),
  "store-every": optionalFlag({ help: "store after every N messages (default 10 with manual, 10000 with auto)" }, positiveInteger),
  "store-interval": explicitFlag({ help: "auto tracking: store at least this often, e.g. 5s", default: "5s" }, duration()),
  marker: defaultFlag({ help: "stop after the message with this body", default: "marker" }, text),
  "no-marker": switchFlag("do not stop at a marker"),
  count: optionalFlag({ help: "stop after N messages" }, positiveInteger),
  "until-end": switchFlag("stop after the last message that was in the stream at the start"),
  "idle-timeout": optionalFlag({ help: "stop when no message comes for this long, e.g. 30s" }, duration()),
  print: switchFlag(
    "print each message as OFFSET<tab>BODY on stdout, PARTITION<tab>OFFSET<tab>BODY on a super stream (status lines then go to stderr)"
  ),
  json: switchFlag(
    "print each message as one JSON object a line on stdout: offset (a string), body (UTF-8 text, or base64 with \"encoding\": \"base64\"), and when present properties, applicationProperties, messageAnnotations, header, amqpValue, amqpSequence, partition (status lines then go to stderr; send --json reads it back)"
  ),
  "single-active": switchFlag("share the stream with the other consumers of this name, one active at a time"),
  filter: optionalFlag({
    help:
      "stream filtering (RabbitMQ 3.13+): only messages whose filter value is one of these (comma-separated); the broker skips chunks without them; not with --until-end"
  }, filterValues),
  "match-unfiltered": switchFlag("with --filter: also the messages published without a filter value"),
  "filter-property": optionalFlag({
    help:
      "with --filter: the application property that holds each message's filter value (for producers that put it there, as Java and rstream users often do)"
  }, text),
  "on-bad-message": defaultFlag({
    help: "a message that cannot be decoded: fail (stop before it, exit 1) or skip (say so on stderr, move past it)",
    default: "fail"
  }, choice(["fail", "skip"])),
  ...offsetStoreFlag,
  ...connectionFlags,
  ...telemetryFlags
}

type ReceiveValues = Values<typeof receiveFlags>

/** What `receive` says when it is done: the summary lines, and why the final store failed, if it did. */
interface Outcome {
  readonly lines: ReadonlyArray<string>
  readonly notStored: string | undefined
}

const streamOutcome = (summary: ReceiveSummary): Outcome => ({
  lines: [
    `Done consuming, first offset ${showOffset(summary.firstOffset)}, last offset ${showOffset(summary.lastOffset)}.`,
    `Consumed ${summary.messages} messages.`
  ],
  notStored: summary.storeConfirmed ? undefined : `the final offset ${showOffset(summary.lastOffset)} was not confirmed stored (${
    Option.getOrElse(summary.storeProblem, () => "unknown")
  }); the next run resumes after ${showOffset(summary.storedOffset)}`
})

const superStreamOutcome = (summary: SuperStreamReceiveSummary): Outcome => {
  const unconfirmed = summary.partitions.filter((p) => !p.storeConfirmed)
  return {
    lines: [
      ...summary.partitions.map((p) =>
        `Partition ${p.partition}: ${p.messages} messages, first offset ${showOffset(p.firstOffset)}, last offset ${
          showOffset(p.lastOffset)
        }.`
      ),
      "Done consuming.",
      `Consumed ${summary.messages} messages.`
    ],
    notStored: unconfirmed.length === 0 ? undefined : `the final offsets were not all confirmed stored (${
      unconfirmed.map((p) => `${p.partition}: ${Option.getOrElse(p.storeProblem, () => "unknown")}`).join("; ")
    }); the next run resumes after what each partition stored`
  }
}

class StoreNotConfirmed extends Data.TaggedError("StoreNotConfirmed")<{ readonly message: string }> {}
class BadMessage extends Data.TaggedError("BadMessage")<{ readonly message: string }> {}

const toTextLine = (message: StreamMessage) =>
  `${"partition" in message ? `${(message as PartitionMessage).partition}\t` : ""}${message.offset}\t${bodyText(message)}`

/** One message as one JSON line (`messageToJson`: nothing lost), its partition first on a super stream. */
const toJsonLine = (message: StreamMessage) =>
  JSON.stringify(
    "partition" in message
      ? { partition: (message as PartitionMessage).partition, ...messageToJson(message) }
      : messageToJson(message)
  )

/** The tracking strategy of the flags; a flag the chosen strategy would ignore is a mistake worth saying. */
const trackingOf = (values: ReceiveValues): Effect.Effect<TrackingStrategy, UsageError> => {
  const mode = values.tracking
  const every = values["store-every"]
  if (mode !== "auto" && values["store-interval"].onCommandLine) {
    return Effect.fail(new UsageError({ message: `--store-interval is for --tracking auto, not ${mode}` }))
  }
  if (mode === "none" && Option.isSome(every)) {
    return Effect.fail(new UsageError({ message: "--store-every is for --tracking manual or auto, not none" }))
  }
  return Effect.succeed(
    mode === "manual"
      ? TrackingStrategy.Manual({ every: Option.getOrElse(every, () => 10) })
      : mode === "auto"
      ? TrackingStrategy.Auto({ messages: Option.getOrElse(every, () => 10_000), interval: values["store-interval"].value })
      : TrackingStrategy.None()
  )
}

/** The rules between the other flags of `receive`, and the library's checks of names: before anything is printed or connected. */
const checked = (values: ReceiveValues) =>
  Effect.gen(function*() {
    const fail = (message: string) => Effect.fail(new UsageError({ message }))
    const filtered = Option.isSome(values.filter)
    if (Option.isSome(values["super-stream"]) && values.stream.onCommandLine) yield* fail("--stream and --super-stream: choose one")
    const tracking = yield* trackingOf(values)
    if (values.print && values.json) yield* fail("--print and --json: choose one")
    if (values["match-unfiltered"] && !filtered) yield* fail("--match-unfiltered is for --filter")
    if (Option.isSome(values["filter-property"]) && !filtered) yield* fail("--filter-property is for --filter")
    if (filtered && values["until-end"]) {
      yield* fail(
        "--filter and --until-end: the broker skips filtered-out chunks without a word, so the end could go unseen; use --idle-timeout"
      )
    }
    yield* Option.match(values["super-stream"], {
      onNone: () => validateConsumeOptions({ stream: values.stream.value, consumerName: values.name }),
      onSome: (superStream) => validateSuperStreamConsumeOptions({ superStream, consumerName: values.name })
    })
    return tracking
  })

/** Consumes as the flags say until a stop condition, then says how it went. */
const receiveWith = (values: ReceiveValues) =>
  Effect.gen(function*() {
    const tracking = yield* checked(values)
    const marker = values.marker
    const stop: StopConditions = {
      marker: values["no-marker"] ? false : (message) => bodyText(message) === marker,
      count: Option.getOrUndefined(values.count),
      untilEnd: values["until-end"],
      idleTimeout: Option.getOrUndefined(values["idle-timeout"]),
      signal: yield* stopSignal
    }
    // With messages on stdout, stdout is data: the status lines go to stderr.
    const output = values.json ? toJsonLine : values.print ? toTextLine : undefined
    const status = output === undefined ? Console.log : statusLine
    const telemetry = yield* telemetryLayer("stream-offsets-receive", values)
    const broker = yield* brokerLayer(values)
    const offsets = yield* offsetStoreLayer(values["offset-store"])
    yield* status("Started consuming...")
    let consumed = 0
    const first = status("First message received.")
    // Without output, `Effect.void` for all but the first: nothing is run for those messages.
    const onMessage = (message: StreamMessage, index: number) => {
      consumed = index + 1
      const line = output === undefined ? Effect.void : dataLine(output(message))
      return index === 0 ? Effect.zipRight(first, line) : line
    }
    const options = {
      consumerName: values.name,
      start: values.offset,
      ignoreStoredOffset: values["ignore-stored"],
      tracking,
      stop,
      singleActive: values["single-active"],
      onDecodeError: values["on-bad-message"],
      filter: Option.getOrUndefined(Option.map(values.filter, (filterValues) => ({
        values: filterValues,
        matchUnfiltered: values["match-unfiltered"],
        property: Option.getOrUndefined(values["filter-property"])
      }))),
      onMessage
    }
    const superStream = Option.getOrUndefined(values["super-stream"])
    const consuming: Effect.Effect<Outcome, ConsumeError, StreamBroker | OffsetStore> = superStream === undefined
      ? Effect.map(receive({ ...options, stream: values.stream.value }), streamOutcome)
      : Effect.map(receiveSuperStream({ ...options, superStream }), superStreamOutcome)
    const outcome = yield* Effect.scoped(Effect.zipRight(progress("messages", () => consumed), consuming)).pipe(
      Effect.provide(Layer.merge(offsets.pipe(Layer.provideMerge(broker)), telemetry)),
      // The library names its option; the CLI names the flag.
      Effect.catchTag("MessageDecodeError", (e) =>
        Effect.fail(
          new BadMessage({
            message: `the message at offset ${e.offset} of stream "${e.stream}" cannot be decoded (${e.reason}); stopped before it, its offset stored (--on-bad-message skip moves past such messages)`
          })
        ))
    )
    for (const line of outcome.lines) yield* status(line)
    // Exit 1: the next run may repeat what this one processed after the stored offset.
    if (outcome.notStored !== undefined) return yield* Effect.fail(new StoreNotConfirmed({ message: outcome.notStored }))
  })

export const receiveCommand = subcommand(
  "receive",
  receiveFlags,
  "Consumes a RabbitMQ stream from where this consumer left off until a stop condition (the marker by default).",
  receiveWith
)
