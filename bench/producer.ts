/**
 * The Producer for apps against `send`, against one broker, in-process on the runtime that runs it:
 *
 *   node scripts/run.mjs bench/producer.ts [--count 100000] [--fibers 50] [--rounds 3] [--uri URI]
 *
 * - `send`: the messages as one iterable, all confirmed at the end;
 * - `Producer.publishAll`: the same messages as a Stream through a Producer;
 * - `Producer.publish` from `--fibers` fibers at once, each waiting for its confirm before its next
 *   message (as request handlers do): the rate, and each publish's time to its confirm (p50, p99).
 * Each on a fresh stream, deleted at the end. A warm-up round first (count / 5, not measured), then
 * `--rounds` rounds taking the three in turn; prints one table of the median rates (latencies over
 * all rounds).
 */
import { Effect, Either, ManagedRuntime, Stream } from "effect"
import process from "node:process"
import { DEFAULT_RETENTION, DEFAULT_URI, parseUri, Producer, send, StreamBroker } from "../src/StreamOffsets.ts"

const argv = process.argv.slice(2)
const known = ["--count", "--fibers", "--rounds", "--uri"]
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
const rounds = Number(flag("rounds") ?? "3")
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

/** The three ways, each on a fresh stream: seconds taken, and for `publish` each call's time to its confirm. */
const ways = {
  send: (n: number) =>
    timed(() => runtime.runPromise(send({ stream: fresh("send"), messages: Array.from({ length: n }, (_, i) => event(i)) }))),
  publishAll: (n: number) =>
    timed(() =>
      runtime.runPromise(Effect.scoped(Effect.gen(function*() {
        const producer = yield* Producer.make({ stream: fresh("publish-all"), retention: DEFAULT_RETENTION })
        return yield* producer.publishAll(Stream.range(0, n - 1).pipe(Stream.map(event)))
      })))
    ),
  publish: (n: number, latencies: Array<number>) =>
    timed(() =>
      runtime.runPromise(Effect.scoped(Effect.gen(function*() {
        const producer = yield* Producer.make({ stream: fresh("publish"), retention: DEFAULT_RETENTION })
        const next = { i: 0 }
        const handler = Effect.gen(function*() {
          for (let i = next.i++; i < n; i = next.i++) {
            const started = performance.now()
            yield* producer.publish(event(i))
            latencies.push(performance.now() - started)
          }
        })
        yield* Effect.all(Array.from({ length: fibers }, () => handler), { concurrency: "unbounded", discard: true })
      })))
    )
}

const rows: Array<string> = []
try {
  // A warm-up round (the JIT), then `rounds` measured ones, taken in turn; the median rate is printed.
  const warm = Math.max(1, Math.floor(count / 5))
  await ways.send(warm)
  await ways.publishAll(warm)
  await ways.publish(warm, [])
  const seconds = { send: [] as Array<number>, publishAll: [] as Array<number>, publish: [] as Array<number> }
  const latencies: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    seconds.send.push((await ways.send(count)).seconds)
    seconds.publishAll.push((await ways.publishAll(count)).seconds)
    seconds.publish.push((await ways.publish(count, latencies)).seconds)
  }
  const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  latencies.sort((a, b) => a - b)
  const n = count.toLocaleString("en")
  rows.push(`| \`send\` (one iterable) | ${n} | ${rate(count, median(seconds.send))} | - | - |`)
  rows.push(`| \`Producer.publishAll\` (a Stream) | ${n} | ${rate(count, median(seconds.publishAll))} | - | - |`)
  rows.push(
    `| \`Producer.publish\` from ${fibers} fibers, each awaiting its confirm | ${n} | ${rate(count, median(seconds.publish))} | ${
      percentile(latencies, 50).toFixed(1)
    } | ${percentile(latencies, 99).toFixed(1)} |`
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
