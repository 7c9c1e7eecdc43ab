/**
 * `receive`: resumes after the consumer's stored offset (or starts at --offset), consumes until a
 * stop condition (the marker by default), stores offsets by the tracking strategy and at the stop,
 * prints the first and last offsets and exits. SIGINT/SIGTERM stop it cleanly: offset stored,
 * summary printed, exit 0.
 */
import { Console, Data, Effect, Layer, Option } from "effect"
import {
  brokerLayer,
  command,
  consumerNameFlag,
  dataLine,
  durationFlag,
  flagReader,
  offsetStoreFlag,
  offsetStoreLayer,
  positiveInteger,
  progress,
  showOffset,
  statusLine,
  stopSignal,
  streamFlag,
  UsageError,
  connectionFlags
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

/** The flags of `receive` (docs/cli.md's table is generated from them: scripts/cli-docs.ts). */
export const receiveFlags = {
  ...streamFlag("stream to consume"),
  "super-stream": {
    help:
      "consume this super stream instead: every partition, offsets per partition; the marker and --until-end hold per partition, --count and --idle-timeout for all"
  },
  ...consumerNameFlag("the consumer's name: its offset is tracked under it"),
  offset: {
    help:
      "where to start when no offset is stored: first, last (the start of the last chunk the broker wrote: it may hold many messages), next (only messages written from now on), an offset, or an ISO timestamp",
    default: "first"
  },
  "ignore-stored": { help: "start at --offset even when an offset is stored", boolean: true },
  tracking: { help: "when offsets are stored: manual (every N), auto (every N and every interval), none (only at the stop)", default: "manual" },
  "store-every": { help: "store after every N messages (default 10 with manual, 10000 with auto)" },
  "store-interval": { help: "auto tracking: store at least this often, e.g. 5s", default: "5s" },
  marker: { help: "stop after the message with this body", default: "marker" },
  "no-marker": { help: "do not stop at a marker", boolean: true },
  count: { help: "stop after N messages" },
  "until-end": { help: "stop after the last message that was in the stream at the start", boolean: true },
  "idle-timeout": { help: "stop when no message comes for this long, e.g. 30s" },
  print: {
    help: "print each message as OFFSET<tab>BODY on stdout, PARTITION<tab>OFFSET<tab>BODY on a super stream (status lines then go to stderr)",
    boolean: true
  },
  json: {
    help:
      "print each message as one JSON object a line on stdout: offset (a string), body (UTF-8 text, or base64 with \"encoding\": \"base64\"), and when present properties, applicationProperties, messageAnnotations, header, amqpValue, amqpSequence, partition (status lines then go to stderr; send --json reads it back)",
    boolean: true
  },
  "single-active": { help: "share the stream with the other consumers of this name, one active at a time", boolean: true },
  filter: {
    help:
      "stream filtering (RabbitMQ 3.13+): only messages whose filter value is one of these (comma-separated); the broker skips chunks without them; not with --until-end"
  },
  "match-unfiltered": { help: "with --filter: also the messages published without a filter value", boolean: true },
  "filter-property": {
    help:
      "with --filter: the application property that holds each message's filter value (for producers that put it there, as Java and rstream users often do)"
  },
  "on-bad-message": {
    help: "a message that cannot be decoded: fail (stop before it, exit 1) or skip (say so on stderr, move past it)",
    default: "fail"
  },
  ...offsetStoreFlag,
  ...connectionFlags
} as const

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

const parseStart = (value: string): Effect.Effect<StartPosition, UsageError> => {
  if (value === "first") return Effect.succeed(StartPosition.First())
  if (value === "last") return Effect.succeed(StartPosition.Last())
  if (value === "next") return Effect.succeed(StartPosition.Next())
  if (/^[0-9]+$/.test(value)) return Effect.succeed(StartPosition.Offset({ offset: BigInt(value) }))
  const date = new Date(value)
  return /^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(date.getTime())
    ? Effect.succeed(StartPosition.Timestamp({ date }))
    : Effect.fail(
      new UsageError({ message: `--offset must be first, last, next, an offset or an ISO timestamp, got "${value}"` })
    )
}

export const receiveCommand = command(
  "receive",
  "Consumes a RabbitMQ stream from where this consumer left off until a stop condition (the marker by default).",
  receiveFlags,
  (values) =>
    Effect.gen(function*() {
      const get = flagReader(receiveFlags, values)
      const stream = (yield* get("stream"))!
      const superStream = values["super-stream"]
      if (superStream !== undefined && values.stream !== undefined) {
        return yield* new UsageError({ message: "--stream and --super-stream: choose one" })
      }
      const consumerName = (yield* get("name"))!
      const start = yield* parseStart((yield* get("offset"))!)
      const mode = (yield* get("tracking"))!
      const every = values["store-every"]
      // A flag the chosen strategy would ignore is a mistake worth saying.
      if (mode !== "auto" && values["store-interval"] !== undefined) {
        return yield* new UsageError({ message: `--store-interval is for --tracking auto, not ${mode}` })
      }
      if (mode === "none" && every !== undefined) {
        return yield* new UsageError({ message: "--store-every is for --tracking manual or auto, not none" })
      }
      const tracking = mode === "manual"
        ? TrackingStrategy.Manual({ every: every === undefined ? 10 : yield* positiveInteger("--store-every", every) })
        : mode === "auto"
        ? TrackingStrategy.Auto({
          messages: every === undefined ? 10_000 : yield* positiveInteger("--store-every", every),
          interval: yield* durationFlag("--store-interval", (yield* get("store-interval"))!)
        })
        : mode === "none"
        ? TrackingStrategy.None()
        : yield* Effect.fail(new UsageError({ message: `--tracking must be manual, auto or none, got "${mode}"` }))
      const marker = (yield* get("marker"))!
      const stop: StopConditions = {
        marker: values["no-marker"] ? false : (message) => bodyText(message) === marker,
        count: values.count === undefined ? undefined : yield* positiveInteger("--count", values.count),
        untilEnd: values["until-end"] === "true",
        idleTimeout: values["idle-timeout"] === undefined
          ? undefined
          : yield* durationFlag("--idle-timeout", values["idle-timeout"]),
        signal: yield* stopSignal
      }
      if (values.print && values.json) return yield* new UsageError({ message: "--print and --json: choose one" })
      const onBadMessage = (yield* get("on-bad-message"))!
      if (onBadMessage !== "fail" && onBadMessage !== "skip") {
        return yield* new UsageError({ message: `--on-bad-message must be fail or skip, got "${onBadMessage}"` })
      }
      const filterValues = values.filter?.split(",")
      if (filterValues !== undefined && filterValues.some((v) => v === "")) {
        return yield* new UsageError({ message: `--filter takes filter values separated by commas, got "${values.filter}"` })
      }
      if (values["match-unfiltered"] !== undefined && filterValues === undefined) {
        return yield* new UsageError({ message: "--match-unfiltered is for --filter" })
      }
      const filterProperty = values["filter-property"]
      if (filterProperty !== undefined && filterValues === undefined) {
        return yield* new UsageError({ message: "--filter-property is for --filter" })
      }
      if (filterValues !== undefined && stop.untilEnd) {
        return yield* new UsageError({
          message: "--filter and --until-end: the broker skips filtered-out chunks without a word, so the end could go unseen; use --idle-timeout"
        })
      }
      // With messages on stdout, stdout is data: the status lines go to stderr.
      const output = values.json ? toJsonLine : values.print ? toTextLine : undefined
      const status = output === undefined ? Console.log : statusLine
      // Everything checked before anything is printed or connected.
      yield* superStream === undefined
        ? validateConsumeOptions({ stream, consumerName })
        : validateSuperStreamConsumeOptions({ superStream, consumerName })
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
        consumerName,
        start,
        ignoreStoredOffset: values["ignore-stored"] === "true",
        tracking,
        stop,
        singleActive: values["single-active"] === "true",
        onDecodeError: onBadMessage as "fail" | "skip",
        filter: filterValues && {
          values: filterValues,
          matchUnfiltered: values["match-unfiltered"] === "true",
          property: filterProperty
        },
        onMessage
      }
      const consuming: Effect.Effect<Outcome, ConsumeError, StreamBroker | OffsetStore> = superStream === undefined
        ? Effect.map(receive({ ...options, stream }), streamOutcome)
        : Effect.map(receiveSuperStream({ ...options, superStream }), superStreamOutcome)
      const outcome = yield* Effect.scoped(Effect.zipRight(progress("messages", () => consumed), consuming)).pipe(
        Effect.provide(offsets.pipe(Layer.provideMerge(broker))),
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
)

