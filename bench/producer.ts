/**
 * The Producer for apps against `send`, against one broker, in-process on the runtime that runs it:
 *
 *   node scripts/run.mjs bench/producer.ts [--count 100000] [--fibers 50] [--uri URI]
 *
 * - `send`: the messages as one iterable, all confirmed at the end;
 * - `Producer.publishAll`: the same messages as a Stream through a Producer;
 * - `Producer.publish` from `--fibers` fibers at once, each waiting for its confirm before its next
 *   message (as request handlers do): the rate, and each publish's time to its confirm (p50, p99).
 * Each on a fresh stream, deleted at the end. Prints one table.
 */
import { Effect, Either, ManagedRuntime, Stream } from "effect"
import process from "node:process"
import { DEFAULT_RETENTION, DEFAULT_URI, parseUri, Producer, send, StreamBroker } from "../src/StreamOffsets.ts"

const argv = process.argv.slice(2)
const known = ["--count", "--fibers", "--uri"]
const flag = (name: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const unknown = argv.filter((a, i) => (a.startsWith("--") ? !known.includes(a) : !known.includes(argv[i - 1] ?? "")))
if (unknown.length > 0) {
  console.error(`error: unknown argument ${unknown[0]} (flags: ${known.join(" ")})`)
  process.exit(2)
}
const count = Number(flag("count") ?? "100000")
const fibers = Number(flag("fibers") ?? "50")
const config = Either.getOrThrow(parseUri(flag("uri") ?? process.env.RABBITMQ_STREAM_URI ?? DEFAULT_URI))
const runtime = ManagedRuntime.make(StreamBroker.layer(config))
const streams: Array<string> = []
const fresh = (name: string) => {
  const stream = `bench-producer-${process.pid}-${name}`
  streams.push(stream)
  return stream
}
const event = (i: number) => JSON.stringify({ type: "order.created", order: i, amount: i % 1000 })
const timed = async <A>(f: () => Promise<A>) => {
  const started = performance.now()
  const value = await f()
  return { value, seconds: (performance.now() - started) / 1000 }
}
const rate = (n: number, seconds: number) => Math.round(n / seconds).toLocaleString("en")
const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const rows: Array<string> = []
try {
  const sent = await timed(() =>
    runtime.runPromise(send({ stream: fresh("send"), messages: Array.from({ length: count }, (_, i) => event(i)) }))
  )
  rows.push(`| \`send\` (one iterable) | ${count.toLocaleString("en")} | ${rate(count, sent.seconds)} | - | - |`)

  const all = await timed(() =>
    runtime.runPromise(Effect.scoped(Effect.gen(function*() {
      const producer = yield* Producer.make({ stream: fresh("publish-all"), retention: DEFAULT_RETENTION })
      return yield* producer.publishAll(Stream.range(0, count - 1).pipe(Stream.map(event)))
    })))
  )
  rows.push(`| \`Producer.publishAll\` (a Stream) | ${count.toLocaleString("en")} | ${rate(count, all.seconds)} | - | - |`)

  const latencies: Array<number> = []
  const concurrent = await timed(() =>
    runtime.runPromise(Effect.scoped(Effect.gen(function*() {
      const producer = yield* Producer.make({ stream: fresh("publish"), retention: DEFAULT_RETENTION })
      const next = { i: 0 }
      const handler = Effect.gen(function*() {
        for (let i = next.i++; i < count; i = next.i++) {
          const started = performance.now()
          yield* producer.publish(event(i))
          latencies.push(performance.now() - started)
        }
      })
      yield* Effect.all(Array.from({ length: fibers }, () => handler), { concurrency: "unbounded", discard: true })
    })))
  )
  latencies.sort((a, b) => a - b)
  rows.push(
    `| \`Producer.publish\` from ${fibers} fibers, each awaiting its confirm | ${count.toLocaleString("en")} | ${
      rate(count, concurrent.seconds)
    } | ${percentile(latencies, 50).toFixed(1)} | ${percentile(latencies, 99).toFixed(1)} |`
  )
} finally {
  await runtime.runPromise(Effect.gen(function*() {
    const broker = yield* StreamBroker
    for (const stream of streams) yield* Effect.ignore(broker.deleteStream(stream))
  }))
  await runtime.dispose()
}
console.log("| how | messages | msg/s | confirm p50 ms | confirm p99 ms |\n|---|---:|---:|---:|---:|")
for (const row of rows) console.log(row)
