/**
 * `offset`: where a consumer stands on a stream, without consuming: its stored offset (or none),
 * the stream's first and last offsets, and the lag. `--set` moves the stored offset (also back,
 * which the workflows never do: here it is an explicit act).
 */
import { Console, Effect, Either, Layer, Option, Schedule } from "effect"
import {
  brokerLayer,
  connectionFlags,
  consumerNameFlag,
  offsetStoreFlag,
  offsetStoreLayer,
  optionalFlag,
  type Parse,
  showOffset,
  streamFlag,
  subcommand,
  switchFlag,
  text,
  UsageError,
  type Values
} from "./cli.ts"
import {
  inspectOffset,
  inspectSuperStreamOffsets,
  type OffsetReport,
  OffsetStore,
  validateConsumeOptions,
  validateSuperStreamConsumeOptions
} from "./StreamOffsets.ts"

/** What `--set` stores: an offset, or one relative to the stream's bounds. */
type SetOffset = bigint | "first" | "last"

const setOffset: Parse<SetOffset> = (value, source) =>
  /^[0-9]+$/.test(value)
    ? Either.right(BigInt(value))
    : value === "first" || value === "last"
    ? Either.right(value)
    : Either.left(new UsageError({ message: `${source} must be first, last or an offset, got "${value}"` }))

/** The flags of `offset` (docs/cli.md's table is generated from them: scripts/cli-docs.ts). */
export const offsetFlags = {
  ...streamFlag("stream to inspect"),
  "super-stream": optionalFlag(
    { help: "inspect every partition of this super stream instead: one line (or JSON object) per partition" },
    text
  ),
  ...consumerNameFlag("the consumer whose offset to show"),
  set: optionalFlag({
    help:
      "store this offset for the consumer first: first (it resumes at the stream's first message), last (it resumes after the last message now in the stream), or an offset N (it resumes after N)"
  }, setOffset),
  json: switchFlag("print the report as one JSON object (offsets as strings, null when none)"),
  ...offsetStoreFlag,
  ...connectionFlags
}

type OffsetValues = Values<typeof offsetFlags>

const json = Option.match({ onNone: () => null, onSome: (offset: bigint) => offset.toString() })
const toJson = (report: OffsetReport) =>
  JSON.stringify({
    stream: report.stream,
    consumer: report.consumerName,
    storedOffset: json(report.storedOffset),
    firstOffset: json(report.firstOffset),
    lastOffset: json(report.lastOffset),
    lag: json(report.lag)
  })

/**
 * The offset to store for `--set`. A consumer resumes at stored + 1, so "first" is the offset
 * before the first one; when the stream starts at 0 that cannot be stored.
 */
const target = (value: SetOffset, report: OffsetReport): Effect.Effect<bigint, UsageError> => {
  if (typeof value === "bigint") return Effect.succeed(value)
  if (value === "last") {
    return Option.match(report.lastOffset, {
      onNone: () => Effect.fail(new UsageError({ message: `--set last: stream "${report.stream}" holds no message` })),
      onSome: Effect.succeed
    })
  }
  const first = Option.getOrElse(report.firstOffset, () => 0n)
  return first > 0n
    ? Effect.succeed(first - 1n)
    : Effect.fail(
      new UsageError({
        message:
          "--set first: the stream starts at offset 0 and an offset below it cannot be stored; run receive with --ignore-stored --offset first instead"
      })
    )
}

/** Shows (with `--set`, first moves) where the consumer stands. */
const offsetWith = (values: OffsetValues) =>
  Effect.gen(function*() {
    const stream = values.stream.value
    const consumerName = values.name
    const superStream = Option.getOrUndefined(values["super-stream"])
    const set = Option.getOrUndefined(values.set)
    if (superStream !== undefined) {
      if (values.stream.onCommandLine) return yield* new UsageError({ message: "--stream and --super-stream: choose one" })
      if (set !== undefined) {
        return yield* new UsageError({ message: "--set takes one stream: give a partition with --stream NAME-N" })
      }
    }
    yield* superStream === undefined
      ? validateConsumeOptions({ stream, consumerName })
      : validateSuperStreamConsumeOptions({ superStream, consumerName })
    const broker = yield* brokerLayer(values)
    // Reading offsets creates nothing: a file store that is not there is a mistake (unless --set).
    const offsets = yield* offsetStoreLayer(values["offset-store"], { readOnly: set === undefined })
    if (superStream !== undefined) {
      const reports = yield* inspectSuperStreamOffsets(superStream, consumerName).pipe(
        Effect.provide(offsets.pipe(Layer.provideMerge(broker)))
      )
      for (const r of reports) {
        yield* Console.log(
          values.json ? toJson(r) : `${r.stream}: stored offset ${showOffset(r.storedOffset)}, first offset ${
            showOffset(r.firstOffset)
          }, last offset ${showOffset(r.lastOffset)}, lag ${showOffset(r.lag)} offsets`
        )
      }
      return
    }
    const report = yield* Effect.gen(function*() {
      const before = yield* inspectOffset(stream, consumerName)
      if (set === undefined) return before
      const offset = yield* target(set, before)
      const store = yield* OffsetStore
      yield* store.store(consumerName, stream, offset)
      // The broker does not acknowledge a store: read it back before saying it is done.
      yield* store.query(consumerName, stream).pipe(
        Effect.filterOrFail((seen) => Option.contains(seen, offset), () => "not yet" as const),
        Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100, while: (e) => e === "not yet" }),
        Effect.catchIf((e) => e === "not yet", () => Effect.logWarning(`the stored offset ${offset} could not be read back yet`))
      )
      return yield* inspectOffset(stream, consumerName)
    }).pipe(Effect.provide(offsets.pipe(Layer.provideMerge(broker))))
    if (values.json) return yield* Console.log(toJson(report))
    yield* Console.log(`stream: ${report.stream}`)
    yield* Console.log(`consumer: ${report.consumerName}`)
    yield* Console.log(`stored offset: ${showOffset(report.storedOffset)}`)
    yield* Console.log(`first offset: ${showOffset(report.firstOffset)}`)
    yield* Console.log(`last offset: ${showOffset(report.lastOffset)}`)
    yield* Console.log(`lag: ${showOffset(report.lag)} offsets`)
  })

export const offsetCommand = subcommand(
  "offset",
  offsetFlags,
  "Shows a consumer's stored offset and the stream's first and last offsets, without consuming; --set stores one.",
  offsetWith
)
