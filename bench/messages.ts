/**
 * What message features cost and save, measured against one broker:
 *
 *   node scripts/run.mjs bench/messages.ts [--count 200000] [--uri URI]
 *
 * - Sub-entry batching and compression: the same messages (JSON bodies of about 150 bytes, alike as
 *   events of one app are) published plainly, in sub-entry batches of 100, and those gzipped: `send`'s
 *   rate, the stream's size on the broker's disk (its segment files, when the broker is this
 *   project's: BROKER_STATE_DIR), and `receive`'s rate reading it back.
 * - Filtering: the messages of four regions, published a region at a time in rounds (so that chunks
 *   hold one region, as when producers are per region or traffic comes in bursts): what the broker
 *   sends a consumer that filters one region, against what the stream holds, and `receive`'s time.
 * - Properties: messages with properties and application properties against plain bodies of the
 *   same size, sent and received.
 * Every stream is deleted at the end. Prints one table; numbers vary by ±30 % between runs here.
 */
import { Effect, Either, Layer, ManagedRuntime, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import process from "node:process"
import {
  type ConsumeFilter,
  DEFAULT_URI,
  OffsetStore,
  type OutgoingMessage,
  parseUri,
  receive,
  type Sendable,
  send,
  type SendOptions,
  StartPosition,
  StreamBroker,
  TrackingStrategy
} from "../src/StreamOffsets.ts"

const argv = process.argv.slice(2)
const flag = (name: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const unknown = argv.filter((a, i) => a.startsWith("--") ? !["--count", "--uri"].includes(a) : !argv[i - 1]?.startsWith("--"))
if (unknown.length > 0) {
  console.error(`error: unknown argument ${unknown[0]} (flags: --count N, --uri URI)`)
  process.exit(2)
}
const count = Number(flag("count") ?? "200000")
const config = Either.getOrThrow(parseUri(flag("uri") ?? process.env.RABBITMQ_STREAM_URI ?? DEFAULT_URI))
const runtime = ManagedRuntime.make(OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(config))))
const run = <A, E>(effect: Effect.Effect<A, E, StreamBroker | OffsetStore>) => runtime.runPromise(effect)
const prefix = `bench-messages-${process.pid}`
const streams: Array<string> = []

const timed = async <A>(f: () => Promise<A>) => {
  const started = performance.now()
  const value = await f()
  return { value, seconds: (performance.now() - started) / 1000 }
}
const rate = (n: number, seconds: number) => Math.round(n / seconds).toLocaleString("en")
const mb = (bytes: number | undefined) => (bytes === undefined ? "n/a" : (bytes / 1e6).toFixed(1))

/** The stream's segment files on this project's broker (BROKER_STATE_DIR), in bytes. */
const diskSize = (stream: string): number | undefined => {
  const base = path.join(process.env.BROKER_STATE_DIR ?? "/var/lib/effect-stream-offsets", "trixie/var/lib/rabbitmq/mnesia")
  try {
    for (const node of fs.readdirSync(base)) {
      const dir = path.join(base, node, "stream")
      if (!fs.existsSync(dir)) continue
      const own = fs.readdirSync(dir).find((d) => d.startsWith(`__${stream}_`))
      if (own === undefined) continue
      return fs.readdirSync(path.join(dir, own)).filter((f) => f.endsWith(".segment"))
        .reduce((sum, f) => sum + fs.statSync(path.join(dir, own, f)).size, 0)
    }
  } catch {
    return undefined
  }
  return undefined
}

const event = (i: number) =>
  JSON.stringify({ type: "order.created", orderId: `order-${i}`, customer: `customer-${i % 977}`, amount: (i % 1000) / 10, currency: "EUR" })

const publish = (name: string, messages: Iterable<Sendable>, options: Partial<SendOptions> = {}) => {
  const stream = `${prefix}-${name}`
  streams.push(stream)
  return timed(() => run(send({ stream, messages, ...options }))).then(({ seconds }) => ({ stream, seconds }))
}

/**
 * `receive` from the first message: to the end, or with a filter (the end cannot be told then) to the
 * number of messages expected.
 */
let consumers = 0
const consumeAll = (stream: string, filter?: ConsumeFilter, expected?: number) =>
  timed(() =>
    run(receive({
      stream,
      consumerName: `bench-${consumers++}`,
      tracking: TrackingStrategy.None(),
      filter,
      stop: filter === undefined ? { marker: false, untilEnd: true } : { marker: false, count: expected }
    }))
  ).then(({ seconds, value }) => ({ messages: value.messages, seconds }))

/** What the broker sends a subscription (before the consumer's own filter), until a second of silence. */
const delivered = (stream: string, filter?: ConsumeFilter) =>
  run(Effect.scoped(Effect.gen(function*() {
    const broker = yield* StreamBroker
    const messages = yield* broker.subscribe({
      stream,
      start: StartPosition.First(),
      filter: filter && { values: filter.values, matchUnfiltered: filter.matchUnfiltered === true }
    })
    return yield* messages.pipe(Stream.timeout("1 second"), Stream.runCount)
  })))

const rows: Array<Array<string>> = []
const row = (...cells: Array<string | number>) => {
  rows.push(cells.map(String))
  console.error(cells.join(" | "))
}

try {
  // Sub-entry batching and compression.
  const bodies = () => Array.from({ length: count }, (_, i) => event(i))[Symbol.iterator]()
  for (const [label, options] of [
    ["plain", {}],
    ["sub-entries of 100", { subEntrySize: 100 }],
    ["sub-entries of 100, gzip", { subEntrySize: 100, compression: "gzip" as const }]
  ] as const) {
    const sent = await publish(label.replace(/\W+/g, "-"), bodies(), options)
    const read = await consumeAll(sent.stream)
    row(`send, receive: ${label}`, count, `${rate(count, sent.seconds)} msg/s`, `${rate(read.messages, read.seconds)} msg/s`, `${mb(diskSize(sent.stream))} MB on disk`)
  }

  // Filtering: four regions, a region at a time, in rounds.
  const regions = ["eu", "us", "ap", "sa"]
  const perBurst = 5000
  const bursts = function*(): Generator<OutgoingMessage> {
    for (let round = 0; round * regions.length * perBurst < count; round++) {
      for (const region of regions) {
        for (let i = 0; i < perBurst; i++) yield { body: event(i), filterValue: region }
      }
    }
  }
  const filtered = await publish("regions", bursts())
  const total = await delivered(filtered.stream)
  const onlyEu = await delivered(filtered.stream, { values: ["eu"] })
  const all = await consumeAll(filtered.stream)
  const eu = await consumeAll(filtered.stream, { values: ["eu"] }, total / regions.length)
  row("filtering: all regions", total, `${total.toLocaleString("en")} delivered`, `${all.seconds.toFixed(2)} s`, `${all.messages} processed`)
  row(
    "filtering: --filter eu",
    total,
    `${onlyEu.toLocaleString("en")} delivered (${((100 * onlyEu) / total).toFixed(1)} %)`,
    `${eu.seconds.toFixed(2)} s`,
    `${eu.messages} processed`
  )

  // Properties: decoding and encoding them.
  const withProperties = function*(): Generator<OutgoingMessage> {
    for (let i = 0; i < count; i++) {
      yield {
        body: event(i),
        properties: { messageId: `m-${i}`, contentType: "application/json", creationTime: new Date() },
        applicationProperties: { region: "eu", n: i, urgent: i % 2 === 0 }
      }
    }
  }
  const plain = await publish("plain-bodies", bodies())
  const rich = await publish("with-properties", withProperties())
  const readPlain = await consumeAll(plain.stream)
  const readRich = await consumeAll(rich.stream)
  row("plain bodies", count, `${rate(count, plain.seconds)} msg/s`, `${rate(readPlain.messages, readPlain.seconds)} msg/s`, "")
  row("with properties + 3 application properties", count, `${rate(count, rich.seconds)} msg/s`, `${rate(readRich.messages, readRich.seconds)} msg/s`, "")
} finally {
  await run(Effect.gen(function*() {
    const broker = yield* StreamBroker
    for (const stream of streams) yield* Effect.ignore(broker.deleteStream(stream))
  }))
  await runtime.dispose()
}

console.log(`| what | messages | send | receive | other |\n|---|---:|---:|---:|---:|`)
for (const r of rows) console.log(`| ${r.join(" | ")} |`)
