/**
 * `offset`: where consumers stand on a stream, without consuming: each one's stored offset (or
 * none), the stream's first and last offsets, and the lag. `--name` may be given several times;
 * `--all` asks the broker's management API for every name with an offset (the stream protocol has
 * no request that lists them). `--watch` refreshes until SIGINT/SIGTERM: a table redrawn in place
 * on a terminal, one JSON object per refresh in a pipe. `--set` moves one consumer's stored offset
 * (also back, which the workflows never do: here it is an explicit act).
 */
import { Clock, Console, Data, Duration, Effect, Either, Layer, Option, Redacted, Schedule, type Scope } from "effect"
import { Buffer } from "node:buffer"
import process from "node:process"
import {
  brokerLayer,
  connectionConfigOf,
  connectionFlags,
  dataLine,
  defaultFlag,
  duration,
  offsetStoreFlag,
  offsetStoreLayer,
  optionalFlag,
  type Parse,
  repeatedFlag,
  showOffset,
  stopSignal,
  streamFlag,
  subcommand,
  switchFlag,
  text,
  UsageError,
  type Values
} from "./cli.ts"
import {
  type BrokerError,
  type ConnectionConfig,
  type InvalidArgument,
  inspectOffset,
  inspectSuperStreamOffsets,
  type OffsetReport,
  OffsetStore,
  type OffsetStoreError,
  StreamBroker,
  type StreamNotFound,
  type SuperStreamNotFound,
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

const CONSUMER_NAME_ENV = "RABBITMQ_STREAM_CONSUMER_NAME"
const DEFAULT_CONSUMER_NAME = "offset-tracking-tutorial"

/** The flags of `offset` (docs/cli.md's table is generated from them: scripts/cli-docs.ts). */
export const offsetFlags = {
  ...streamFlag("stream to inspect"),
  "super-stream": optionalFlag(
    { help: "inspect every partition of this super stream instead: one line (or JSON object) per partition" },
    text
  ),
  name: {
    ...repeatedFlag("a consumer to show; give it several times to show several", text),
    env: CONSUMER_NAME_ENV,
    default: DEFAULT_CONSUMER_NAME
  },
  all: switchFlag(
    "every consumer with an offset on the stream (on any partition of a super stream), as the broker's management API lists them (the stream protocol cannot): needs RabbitMQ's management plugin"
  ),
  "management-url": optionalFlag({
    env: "RABBITMQ_MANAGEMENT_URL",
    help: "the management API --all asks (default http://HOST:15672, HOST the URI's first host; the URI's user and password)"
  }, text),
  set: optionalFlag({
    help:
      "store this offset for the consumer first: first (it resumes at the stream's first message), last (it resumes after the last message now in the stream), or an offset N (it resumes after N)"
  }, setOffset),
  watch: switchFlag(
    "refresh every --interval until SIGINT/SIGTERM (exit 0): on a terminal a table redrawn in place (stored offset, lag, offsets stored per second since the last refresh), in a pipe one JSON object per refresh"
  ),
  interval: defaultFlag({ help: "how often --watch refreshes", default: "2s" }, duration()),
  json: switchFlag("print the report as one JSON object (offsets as strings, null when none)"),
  ...offsetStoreFlag,
  ...connectionFlags
}

type OffsetValues = Values<typeof offsetFlags>

/** Where to look, as the flags say (their combinations checked before anything connects). */
interface Target {
  readonly stream: string
  readonly superStream: string | undefined
  /** The names given (or the default); with --all, the management API's are added at each look. */
  readonly names: ReadonlyArray<string>
  readonly set: SetOffset | undefined
}

const targetOf = (values: OffsetValues): Effect.Effect<Target, UsageError | InvalidArgument> =>
  Effect.gen(function*() {
    const stream = values.stream.value
    const superStream = Option.getOrUndefined(values["super-stream"])
    const set = Option.getOrUndefined(values.set)
    const fail = (message: string) => Effect.fail(new UsageError({ message }))
    const envName = process.env[CONSUMER_NAME_ENV]
    const names = values.name.length > 0 ? values.name : values.all ? [] : [envName || DEFAULT_CONSUMER_NAME]
    if (superStream !== undefined && values.stream.onCommandLine) return yield* fail("--stream and --super-stream: choose one")
    if (set !== undefined) {
      if (superStream !== undefined) return yield* fail("--set takes one stream: give a partition with --stream NAME-N")
      if (values.watch) return yield* fail("--set and --watch: set the offset first, then watch")
      if (values.all || names.length > 1) return yield* fail("--set takes one consumer: give one --name")
    }
    if (Option.isSome(values["management-url"]) && !values.all) yield* fail("--management-url is for --all")
    for (const consumerName of names.length > 0 ? names : [DEFAULT_CONSUMER_NAME]) {
      yield* superStream === undefined
        ? validateConsumeOptions({ stream, consumerName })
        : validateSuperStreamConsumeOptions({ superStream, consumerName })
    }
    return { stream, superStream, names, set }
  })

/** Shows (with `--set`, first moves; with `--watch`, keeps showing) where the consumers stand. */
const offsetWith = (values: OffsetValues) =>
  Effect.gen(function*() {
    const target = yield* targetOf(values)
    const broker = yield* brokerLayer(values)
    const management = values.all ? Option.some(managementApi(yield* connectionConfigOf(values), values["management-url"])) : Option.none()
    // Reading offsets creates nothing: a file store that is not there is a mistake (unless --set).
    const offsets = yield* offsetStoreLayer(values["offset-store"], { readOnly: target.set === undefined })
    const reports = reportsOf(target, management)
    const shown: Effect.Effect<void, OffsetError, StreamBroker | OffsetStore | Scope.Scope> = target.set !== undefined
      ? Effect.flatMap(setOffsetOf(target.stream, target.names[0]!, target.set), (report) => printReports([report], values.json, false))
      : values.watch
      ? watch(reports, values.interval, values.json || process.stdout.isTTY !== true)
      : Effect.flatMap(reports, (all) => printReports(all, values.json, target.names.length > 1 || values.all))
    yield* Effect.scoped(shown).pipe(Effect.provide(offsets.pipe(Layer.provideMerge(broker))))
  })

/** What `offset` can fail with (a usage error exits 2, the others 1). */
type OffsetError =
  | UsageError
  | InvalidArgument
  | BrokerError
  | StreamNotFound
  | SuperStreamNotFound
  | OffsetStoreError
  | ManagementUnavailable

/** Every report of one look: each stream (or partition) for each consumer name. */
const reportsOf = (target: Target, management: Option.Option<ManagementApi>) =>
  Effect.gen(function*() {
    const streams = target.superStream === undefined
      ? [target.stream]
      : yield* Effect.flatMap(StreamBroker, (broker) => broker.partitions(target.superStream!))
    const listed = Option.isSome(management) ? yield* trackedNames(management.value, streams) : []
    const names = [...new Set([...target.names, ...listed])]
    const superStream = target.superStream
    const perName = (name: string) =>
      superStream === undefined
        ? Effect.map(inspectOffset(target.stream, name), (report) => [report])
        : inspectSuperStreamOffsets(superStream, name)
    return (yield* Effect.forEach(names, perName)).flat()
  })

/** `--set`: stores the offset, reads it back, and reports where the consumer now stands. */
const setOffsetOf = (stream: string, consumerName: string, set: SetOffset) =>
  Effect.gen(function*() {
    const before = yield* inspectOffset(stream, consumerName)
    const offset = yield* storedFor(set, before)
    const store = yield* OffsetStore
    yield* store.store(consumerName, stream, offset)
    // The broker does not acknowledge a store: read it back before saying it is done.
    yield* store.query(consumerName, stream).pipe(
      Effect.filterOrFail((seen) => Option.contains(seen, offset), () => "not yet" as const),
      Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100, while: (e) => e === "not yet" }),
      Effect.catchIf((e) => e === "not yet", () => Effect.logWarning(`the stored offset ${offset} could not be read back yet`))
    )
    return yield* inspectOffset(stream, consumerName)
  })

/**
 * The offset to store for `--set`. A consumer resumes at stored + 1, so "first" is the offset
 * before the first one; when the stream starts at 0 that cannot be stored.
 */
const storedFor = (value: SetOffset, report: OffsetReport): Effect.Effect<bigint, UsageError> => {
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
 * One consumer on one stream: a block of lines, as the tutorial's single consumer has always been
 * shown; several (partitions, names): a line each, named by stream (and consumer, for several names).
 */
const printReports = (reports: ReadonlyArray<OffsetReport>, asJson: boolean, byName: boolean) =>
  Effect.forEach(reports, (r) => {
    if (asJson) return Console.log(toJson(r))
    if (reports.length === 1 && !byName) {
      return Console.log(
        [
          `stream: ${r.stream}`,
          `consumer: ${r.consumerName}`,
          `stored offset: ${showOffset(r.storedOffset)}`,
          `first offset: ${showOffset(r.firstOffset)}`,
          `last offset: ${showOffset(r.lastOffset)}`,
          `lag: ${showOffset(r.lag)} offsets`
        ].join("\n")
      )
    }
    return Console.log(
      `${r.stream}${byName ? ` ${r.consumerName}` : ""}: stored offset ${showOffset(r.storedOffset)}, first offset ${
        showOffset(r.firstOffset)
      }, last offset ${showOffset(r.lastOffset)}, lag ${showOffset(r.lag)} offsets`
    )
  }, { discard: true })

// ---------------------------------------------------------------------------------------------
// --watch
// ---------------------------------------------------------------------------------------------

/** A consumer on a stream at one refresh, with how fast its stored offset moved since the last. */
export interface WatchRow {
  readonly stream: string
  readonly consumer: string
  readonly stored: Option.Option<bigint>
  readonly last: Option.Option<bigint>
  readonly lag: Option.Option<bigint>
  /** Offsets stored per second since the previous refresh (undefined at the first). */
  readonly rate: number | undefined
}

/** The rows of a refresh; `seen` (by stream and consumer: the stored offset and when) is updated. */
export const watchRows = (
  reports: ReadonlyArray<OffsetReport>,
  seen: Map<string, { readonly stored: bigint; readonly at: number }>,
  now: number
): ReadonlyArray<WatchRow> =>
  reports.map((r) => {
    const key = `${r.stream}\u0000${r.consumerName}`
    const before = seen.get(key)
    const stored = Option.getOrElse(r.storedOffset, () => -1n)
    // Stored offsets only move forward, except by --set: a move back shows as 0.
    const rate = before === undefined || now <= before.at
      ? undefined
      : Math.max(0, Number(stored - before.stored)) / ((now - before.at) / 1000)
    seen.set(key, { stored, at: now })
    return { stream: r.stream, consumer: r.consumerName, stored: r.storedOffset, last: r.lastOffset, lag: r.lag, rate }
  })

/** The table `--watch` draws on a terminal: a header and a line per row, columns aligned. */
export const watchTable = (rows: ReadonlyArray<WatchRow>, header: string): ReadonlyArray<string> => {
  const cells = [
    ["STREAM", "CONSUMER", "STORED", "LAST", "LAG", "OFFSETS/S"],
    ...rows.map((r) => [r.stream, r.consumer, showOffset(r.stored), showOffset(r.last), showOffset(r.lag), r.rate === undefined ? "-" : r.rate.toFixed(1)])
  ]
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)))
  // Names to the left, numbers to the right.
  const line = (row: ReadonlyArray<string>) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ").trimEnd()
  return [header, ...cells.map(line), ...(rows.length === 0 ? ["(no consumer has an offset on it yet)"] : [])]
}

/** One refresh as a JSON line (offsets as strings, null when none). */
export const watchJson = (rows: ReadonlyArray<WatchRow>, now: number): string =>
  JSON.stringify({
    time: new Date(now).toISOString(),
    consumers: rows.map((r) => ({
      stream: r.stream,
      consumer: r.consumer,
      storedOffset: json(r.stored),
      lastOffset: json(r.last),
      lag: json(r.lag),
      offsetsPerSecond: r.rate ?? null
    }))
  })

/**
 * Looks again every `interval` until SIGINT/SIGTERM: a table redrawn over the previous one (the
 * cursor moved up over it, the rest of the screen cleared), or a JSON line per look. A look that
 * fails (the broker away past --retry-for) ends it with that error.
 */
const watch = <E, R>(reports: Effect.Effect<ReadonlyArray<OffsetReport>, E, R>, interval: Duration.Duration, asJson: boolean) =>
  Effect.gen(function*() {
    const stopped = yield* stopSignal
    const seen = new Map<string, { readonly stored: bigint; readonly at: number }>()
    const drawn = { lines: 0 }
    const look = Effect.gen(function*() {
      const all = yield* reports
      const now = yield* Clock.currentTimeMillis
      const rows = watchRows(all, seen, now)
      if (asJson) return yield* dataLine(watchJson(rows, now))
      const header = `${new Date(now).toLocaleTimeString()}, every ${Duration.format(interval)} (Ctrl-C to stop)`
      const lines = watchTable(rows, header)
      const up = drawn.lines > 0 ? `\x1b[${drawn.lines}F\x1b[J` : ""
      drawn.lines = lines.length
      yield* Effect.sync(() => process.stdout.write(`${up}${lines.join("\n")}\n`))
    })
    yield* Effect.raceFirst(Effect.forever(Effect.zipRight(look, Effect.sleep(interval))), stopped)
  })

// ---------------------------------------------------------------------------------------------
// --all: the management API
// ---------------------------------------------------------------------------------------------

interface ManagementApi {
  readonly url: string
  readonly vhost: string
  readonly authorization: Redacted.Redacted<string>
}

/** The management API for the connection: `--management-url`, or its first host on port 15672. */
const managementApi = (config: ConnectionConfig, url: Option.Option<string>): ManagementApi => ({
  url: Option.getOrElse(url, () => `http://${config.endpoints[0]?.host ?? "localhost"}:15672`).replace(/\/+$/, ""),
  vhost: config.vhost,
  authorization: Redacted.make(`Basic ${Buffer.from(`${config.username}:${Redacted.value(config.password)}`).toString("base64")}`)
})

/** --all could not ask the management API: exit 1, with what to do instead. */
export class ManagementUnavailable extends Data.TaggedError("ManagementUnavailable")<{ readonly message: string }> {}

/** The consumer names with an offset on any of `streams` (the API's `offsets` of each stream's tracking). */
const trackedNames = (api: ManagementApi, streams: ReadonlyArray<string>) =>
  Effect.map(
    Effect.forEach(streams, (stream) =>
      Effect.tryPromise({
        try: async () => {
          const response = await fetch(`${api.url}/api/stream/${encodeURIComponent(api.vhost)}/${encodeURIComponent(stream)}/tracking`, {
            headers: { authorization: Redacted.value(api.authorization) },
            signal: AbortSignal.timeout(5000)
          })
          // A stream that is not there has no names; inspecting it says it is not there.
          if (response.status === 404) return []
          if (!response.ok) throw new Error(`it answered HTTP ${response.status}`)
          const body = (await response.json()) as { readonly offsets?: Record<string, unknown> }
          return Object.keys(body.offsets ?? {})
        },
        catch: (error) =>
          new ManagementUnavailable({
            message: `--all asks the management API at ${api.url} which consumers have an offset (the stream protocol cannot list them), and ${
              error instanceof Error && error.name === "TimeoutError" ? "it did not answer within 5s" : error instanceof Error ? error.message.replace(/^fetch failed$/, "it could not be reached") : String(error)
            }: enable the management plugin (rabbitmq-plugins enable rabbitmq_management), give --management-url, or name the consumers with --name`
          })
      })),
    (names) => [...new Set(names.flat())].sort()
  )

export const offsetCommand = subcommand(
  "offset",
  offsetFlags,
  "Shows where consumers stand on a stream (stored offset, first and last offsets, lag) without consuming; --watch keeps showing it, --set stores one.",
  offsetWith
)
