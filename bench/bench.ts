/**
 * Throughput benchmark: the library's workflows against the best plain loops with the raw client.
 *
 *   node scripts/run.mjs bench/bench.ts [--sizes 10000,100000,1000000] [--rounds 3]
 *   node_modules/.bin/bun bench/bench.ts ...
 *   node_modules/.bin/deno run -A bench/bench.ts ...
 *
 * Flags: --sizes (default 10000,100000,1000000), --rounds (3), --uri (RABBITMQ_STREAM_URI or the
 * local default), --deadline seconds for the whole run (900), --json FILE (write the results),
 * --only send,raw-send,receive,raw-receive,receive-manual (run only these, e.g. under --cpu-prof).
 *
 * Per size and round, against one broker, in alternating order (ours first on even rounds):
 *   produce  (a) `send` (declare, publish, all confirmed)       vs (b) raw: createStream, declarePublisher,
 *            `await publisher.send` per message, flush, wait for every `publish_confirm` (client-level listener)
 *   consume  (c) `receive` from the first message to the marker, TrackingStrategy.None()
 *            vs (d) raw: declareConsumer(Offset.first()), count until the body is `marker`, closeConsumer.
 *            At the smallest size also `receive` with the default tracking (Manual every 10).
 * Both producers write their own fresh stream (`bench-<run>-<n>-<round>-ours|raw`); the consumers compared
 * read the stream the raw loop wrote, and the raw consumer also reads the one `send` wrote (`send` makes
 * smaller chunks); both streams are deleted at the end of the round (consumers closed first).
 * Times include setup and teardown on both sides (declare/subscribe, delete publisher/close consumer).
 * Every operation has a timeout; a watchdog ends the run (with the partial table) at the deadline.
 */
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { Buffer } from "node:buffer"
import process from "node:process"
import { connect, Offset, type Client } from "rabbitmq-stream-js-client"
import {
  DEFAULT_URI,
  describeConnection,
  Internal,
  isTutorialMarker,
  OffsetStore,
  parseUri,
  receive,
  send,
  StreamBroker,
  type StreamMessage,
  TrackingStrategy,
  tutorialMessages
} from "../src/StreamOffsets.ts"

const { clientTuning } = Internal

// ------------------------------------------------------------------------------------------ flags
const argv = process.argv.slice(2)
const KNOWN_FLAGS = ["sizes", "rounds", "uri", "deadline", "json", "only"]
const unknown = argv.filter((a) => a.startsWith("--") && !KNOWN_FLAGS.includes(a.slice(2).split("=")[0]!))
if (unknown.length > 0) {
  console.error(`error: unknown flag ${unknown[0]} (flags: ${KNOWN_FLAGS.map((f) => `--${f}`).join(" ")})`)
  process.exit(2)
}
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  if (i >= 0) return argv[i + 1]
  const eq = argv.find((a) => a.startsWith(`--${name}=`))
  return eq?.slice(name.length + 3)
}
const sizes = (flag("sizes") ?? "10000,100000,1000000").split(",").map((s) => Number(s.trim()))
const rounds = Number(flag("rounds") ?? "3")
const uri = flag("uri") ?? process.env.RABBITMQ_STREAM_URI ?? DEFAULT_URI
const deadlineSeconds = Number(flag("deadline") ?? "900")
const jsonFile = flag("json")
/** For profiling one side: run only these operations (default all). */
const OPERATIONS = ["send", "raw-send", "tuned-send", "receive", "raw-receive", "tuned-receive", "receive-manual"] as const
const only = flag("only")?.split(",").map((s) => s.trim())
const selected = (op: (typeof OPERATIONS)[number]) => only === undefined || only.includes(op)
if (
  sizes.some((n) => !Number.isInteger(n) || n < 2) || !Number.isInteger(rounds) || rounds < 1 ||
  only?.some((op) => !(OPERATIONS as ReadonlyArray<string>).includes(op))
) {
  console.error(
    `usage: bench.ts [--sizes 10000,100000] [--rounds 3] [--uri URI] [--deadline S] [--json FILE] [--only ${OPERATIONS.join(",")}]`
  )
  process.exit(2)
}
const parsed = parseUri(uri)
if (parsed._tag === "Left") {
  console.error(`error: ${parsed.left.message}`)
  process.exit(2)
}
const config = parsed.right

const versions = process.versions as Record<string, string | undefined>
const runtime = versions.bun ? `Bun ${versions.bun}` : versions.deno ? `Deno ${versions.deno}` : `Node ${versions.node}`
const runtimeName = runtime.split(" ")[0]!
const runId = `${runtimeName.toLowerCase()}-${process.pid}-${Date.now().toString(36)}`

// ------------------------------------------------------------------------------------------ helpers
/** Bound an operation: it cannot hang the benchmark. */
const withTimeout = <A>(what: string, ms: number, promise: Promise<A>): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
/** Per-operation bound: 20 s plus 100 µs per message (120 s at 10^6). */
const opTimeout = (n: number) => 20_000 + n / 10

const mb = (bytes: number) => bytes / 1024 / 1024
/** A full GC before each measured consume (Bun.gc; on Node/Deno V8's gc, exposed at run time if need be). */
const gc: () => void = await (async () => {
  const g = globalThis as { gc?: () => void; Bun?: { gc(sync: boolean): void } }
  if (g.Bun) return () => g.Bun!.gc(true)
  if (g.gc) return g.gc
  try {
    const v8 = await import("node:v8")
    const vm = await import("node:vm")
    v8.setFlagsFromString("--expose-gc")
    const exposed = vm.runInNewContext("gc") as unknown
    if (typeof exposed === "function") return exposed as () => void
  } catch {
    // not available on this runtime: peaks are then measured without a GC before
  }
  return () => {}
})()

/** Peak RSS and heap used of the process, sampled every 50 ms (and at start and stop). */
const memorySampler = () => {
  let peakRss = 0
  let peakHeap = 0
  const sample = () => {
    const m = process.memoryUsage()
    if (m.rss > peakRss) peakRss = m.rss
    if (m.heapUsed > peakHeap) peakHeap = m.heapUsed
  }
  const base = process.memoryUsage()
  sample()
  const timer = setInterval(sample, 50)
  return () => {
    clearInterval(timer)
    sample()
    return { rss: peakRss, heap: peakHeap, rssGrowth: peakRss - base.rss, heapGrowth: peakHeap - base.heapUsed }
  }
}

const median = (xs: ReadonlyArray<number>) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const fmtRate = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "failed")
const fmtRatio = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-")
const fmtMb = (x: number) => (Number.isFinite(x) ? mb(x).toFixed(0) : "-")
/** "peak (+growth over the start of the operation)" in MB. */
const fmtPeak = (peak: number, growth: number) => (Number.isFinite(peak) ? `${fmtMb(peak)} (+${fmtMb(Math.max(0, growth))})` : "-")
const fmtMem = (m: Mem) => `peak RSS ${fmtPeak(m.rss, m.rssGrowth)} MB, heap ${fmtPeak(m.heap, m.heapGrowth)} MB`
/** In the table, an operation left out by --only is "-", not "failed". */
const cellRate = (x: number) => (only !== undefined && !Number.isFinite(x) ? "-" : fmtRate(x))
const log = (line: string) => console.log(`[${runtimeName}] ${line}`)

// ------------------------------------------------------------------------------------------ raw client
const confirmHandlers = new Map<string, (ids: ReadonlyArray<bigint>) => void>()
const rawClient = (name: string) =>
  withTimeout(
    "raw connect",
    15_000,
    connect({
      hostname: config.endpoints[0]!.host,
      port: config.endpoints[0]!.port,
      username: config.username,
      password: Redacted.value(config.password),
      vhost: config.vhost,
      connectionName: name,
      listeners: {
        publish_confirm: (confirm, connectionId) =>
          confirmHandlers.get(`${confirm.publisherId}@${connectionId}`)?.(confirm.publishingIds)
      }
    })
  )
/** The client as it ships. */
const raw: Client = await rawClient("bench-raw")
/** The client with this module's tuning (src/StreamOffsets.ts, `clientInternals`): the same loops on it. */
const tuned: Client = await rawClient("bench-raw-tuned")
clientTuning.tuneClient(tuned)

const RETENTION = { "max-length-bytes": 2_000_000_000 }

/** (b) the best plain loop: send each message, flush, wait until every message is confirmed. */
const rawProduce = async (stream: string, n: number, client = raw): Promise<number> => {
  const t0 = performance.now()
  await client.createStream({ stream, arguments: RETENTION })
  const publisher = await client.declarePublisher({ stream })
  if (client === tuned) clientTuning.tunePublisher(publisher)
  let confirmed = 0
  let done!: () => void
  const allConfirmed = new Promise<void>((resolve) => (done = resolve))
  const key = publisher.extendedId
  confirmHandlers.set(key, (ids) => {
    confirmed += ids.length
    if (confirmed >= n) done()
  })
  try {
    for (let i = 0; i < n - 1; i++) await publisher.send(Buffer.from(`hello ${i}`))
    await publisher.send(Buffer.from("marker"))
    await publisher.flush()
    await allConfirmed
    await client.deletePublisher(publisher.extendedId)
  } finally {
    confirmHandlers.delete(key)
  }
  return performance.now() - t0
}

/** (d) a raw consumer from the first message, counting until the body is `marker`. */
const rawConsume = async (stream: string, n: number, client = raw): Promise<number> => {
  const t0 = performance.now()
  let count = 0
  let withoutBody: string | undefined
  let done!: () => void
  const reachedMarker = new Promise<void>((resolve) => (done = resolve))
  const creditPolicy = client === tuned ? { creditPolicy: clientTuning.creditPolicy() } : {}
  // The tuned client hands its listeners this module's decoded messages (`body`), not the client's (`content`).
  const consumer = await client.declareConsumer({ stream, offset: Offset.first(), ...creditPolicy }, (message) => {
    count++
    const bytes: Uint8Array | undefined = client === tuned ? (message as unknown as StreamMessage).body : message.content
    // Never throw in the client's handler: its error would reach every open connection of the process.
    if (bytes === undefined) {
      withoutBody ??= `offset ${(message as { offset?: unknown }).offset}, fields ${Object.keys(message)}`
      return done()
    }
    if (bytes.length === 6 && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString() === "marker") done()
  })
  if (client === tuned) clientTuning.tuneConsumer(consumer)
  try {
    await withTimeout(`raw consume ${n}`, opTimeout(n), reachedMarker)
  } finally {
    await withTimeout("raw closeConsumer", 10_000, client.closeConsumer(consumer.extendedId)).catch(() => {})
  }
  if (withoutBody !== undefined) throw new Error(`the ${client === tuned ? "tuned" : "raw"} client handed over a message without a body (${withoutBody})`)
  if (count !== n) throw new Error(`raw consumer counted ${count} messages, expected ${n}`)
  return performance.now() - t0
}

// ------------------------------------------------------------------------------------------ ours
const ours = ManagedRuntime.make(OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(config))))

/** (a) the producer workflow. */
const oursProduce = async (stream: string, n: number): Promise<number> => {
  const t0 = performance.now()
  const summary = await ours.runPromise(
    send({ stream, messages: tutorialMessages(n) }).pipe(Effect.timeout(opTimeout(n)))
  )
  if (summary.confirmed !== n) throw new Error(`send confirmed ${summary.confirmed} of ${n}`)
  return performance.now() - t0
}

/** (c) the consumer workflow, from the first message to the marker. */
const oursConsume = async (stream: string, n: number, consumerName: string, tracking?: TrackingStrategy): Promise<number> => {
  const t0 = performance.now()
  const summary = await ours.runPromise(
    receive({ stream, consumerName, stop: { marker: isTutorialMarker }, ...(tracking ? { tracking } : {}) }).pipe(Effect.timeout(opTimeout(n)))
  )
  if (summary.messages !== n || summary.stoppedBy !== "marker") {
    throw new Error(`receive got ${summary.messages} messages (stopped by ${summary.stoppedBy}), expected ${n}`)
  }
  return performance.now() - t0
}

// ------------------------------------------------------------------------------------------ rounds
/** Peaks during one consume, and how far above the start of that consume they went. */
interface Mem {
  rss: number
  heap: number
  rssGrowth: number
  heapGrowth: number
}
const NO_MEM: Mem = { rss: NaN, heap: NaN, rssGrowth: NaN, heapGrowth: NaN }
type Kind = "produce" | "consume" | "consume-manual10" | "consume-send-stream"
interface Sample {
  round: number
  ours: number // ms, NaN on failure
  raw: number
  /** The raw loop on the tuned client (NaN when not run). */
  tuned?: number
  oursMem?: Mem
  rawMem?: Mem
  tunedMem?: Mem
}
const results = new Map<string, { n: number; kind: Kind; samples: Array<Sample> }>()
const record = (n: number, kind: Kind, sample: Sample) => {
  const key = `${n}/${kind}`
  if (!results.has(key)) results.set(key, { n, kind, samples: [] })
  results.get(key)!.samples.push(sample)
}

let operationFailed = false

/** Runs one timed operation; a failure is reported, recorded as NaN, and makes the run exit 1. */
const timed = async (what: string, f: () => Promise<number>): Promise<number> => {
  try {
    return await f()
  } catch (error) {
    log(`FAILED ${what}: ${error instanceof Error ? error.message : String(error)}`)
    operationFailed = true
    return NaN
  }
}

const consumeMeasured = async (what: string, f: () => Promise<number>) => {
  gc()
  const stop = memorySampler()
  const ms = await timed(what, f)
  return { ms, mem: stop() }
}

const rate = (n: number, ms: number) => (n / ms) * 1000

const runRound = async (n: number, round: number) => {
  const oursStream = `bench-${runId}-${n}-${round}-ours`
  const rawStream = `bench-${runId}-${n}-${round}-raw`
  const tunedStream = `bench-${runId}-${n}-${round}-tuned`
  const oursFirst = round % 2 === 0
  const consuming = selected("receive") || selected("raw-receive") || selected("receive-manual")
  try {
    // produce: (a) vs (b). Without `send`, the raw producer writes the stream the consumers read.
    let a = NaN
    let b = NaN
    const produceOurs = async () => {
      if (selected("send")) a = await timed(`send ${n}`, () => oursProduce(oursStream, n))
    }
    const produceRaw = async () => {
      if (selected("raw-send") || (consuming && !selected("send"))) {
        b = await timed(`raw produce ${n}`, () => withTimeout(`raw produce ${n}`, opTimeout(n), rawProduce(rawStream, n)))
      }
    }
    let t = NaN
    const produceTuned = async () => {
      if (selected("tuned-send")) {
        t = await timed(`tuned produce ${n}`, () => withTimeout(`tuned produce ${n}`, opTimeout(n), rawProduce(tunedStream, n, tuned)))
      }
    }
    for (const step of oursFirst ? [produceOurs, produceRaw, produceTuned] : [produceTuned, produceRaw, produceOurs]) await step()
    record(n, "produce", { round, ours: a, raw: b, tuned: t })
    log(`N=${n} round ${round + 1} produce: ours ${fmtRate(rate(n, a))}/s, raw ${fmtRate(rate(n, b))}/s, tuned ${fmtRate(rate(n, t))}/s`)
    if (!consuming) return

    // consume: (c) vs (d), both from the stream the raw loop wrote (the one `send` wrote if that failed).
    // `send` writes smaller chunks (see the extra row below), and with the client's default credit
    // (one chunk at a time) chunk size, not the consumer, would then set the pace of both.
    const source = Number.isFinite(b) ? rawStream : oursStream
    let c = { ms: NaN, mem: NO_MEM }
    let d = { ms: NaN, mem: NO_MEM }
    const consumeOurs = async () => {
      if (!selected("receive")) return
      c = await consumeMeasured(`receive ${n}`, () => oursConsume(source, n, `bench-${runId}-${round}-none`, TrackingStrategy.None()))
    }
    const consumeRaw = async () => {
      if (selected("raw-receive")) d = await consumeMeasured(`raw consume ${n}`, () => rawConsume(source, n))
    }
    let e = { ms: NaN, mem: NO_MEM }
    const consumeTuned = async () => {
      if (selected("tuned-receive")) e = await consumeMeasured(`tuned consume ${n}`, () => rawConsume(source, n, tuned))
    }
    for (const step of oursFirst ? [consumeOurs, consumeRaw, consumeTuned] : [consumeTuned, consumeRaw, consumeOurs]) await step()
    record(n, "consume", { round, ours: c.ms, raw: d.ms, tuned: e.ms, oursMem: c.mem, rawMem: d.mem, tunedMem: e.mem })
    log(
      `N=${n} round ${round + 1} consume: ours ${fmtRate(rate(n, c.ms))}/s (${fmtMem(c.mem)}), ` +
        `raw ${fmtRate(rate(n, d.ms))}/s (${fmtMem(d.mem)}), tuned ${fmtRate(rate(n, e.ms))}/s (${fmtMem(e.mem)})`
    )

    // The raw consumer again, on the stream `send` wrote: what our producer's chunking costs any consumer.
    if (selected("raw-receive") && Number.isFinite(a) && Number.isFinite(b)) {
      const e = await consumeMeasured(`raw consume ${n} (stream written by send)`, () => rawConsume(oursStream, n))
      record(n, "consume-send-stream", { round, ours: e.ms, raw: d.ms, oursMem: e.mem, rawMem: d.mem })
      log(`N=${n} round ${round + 1} raw consumer on the stream send wrote: ${fmtRate(rate(n, e.ms))}/s`)
    }

    // Manual every 10: at the smallest size (at every size when asked for with --only).
    if (selected("receive-manual") && (n === Math.min(...sizes) || only !== undefined)) {
      const m = await consumeMeasured(`receive ${n} manual-10`, () =>
        oursConsume(source, n, `bench-${runId}-${round}-manual10`, TrackingStrategy.Manual({ every: 10 })))
      record(n, "consume-manual10", { round, ours: m.ms, raw: d.ms, oursMem: m.mem, rawMem: d.mem })
      log(`N=${n} round ${round + 1} consume, Manual every 10: ours ${fmtRate(rate(n, m.ms))}/s (${fmtMem(m.mem)})`)
    }
  } finally {
    // Every publisher and consumer of this round is closed by now: delete the streams.
    for (const stream of [oursStream, rawStream, tunedStream]) {
      await withTimeout(`delete ${stream}`, 10_000, raw.deleteStream({ stream })).catch(() => {})
    }
  }
}

/** One untimed pass of the selected operations on a small stream, so that the first timed round is not the JIT's. */
const warmUp = async () => {
  const n = Math.min(5_000, ...sizes)
  const oursStream = `bench-${runId}-warmup-ours`
  const rawStream = `bench-${runId}-warmup-raw`
  try {
    if (selected("send")) await oursProduce(oursStream, n)
    else await withTimeout("warm-up raw produce", opTimeout(n), rawProduce(oursStream, n))
    if (selected("raw-send")) await withTimeout("warm-up raw produce", opTimeout(n), rawProduce(rawStream, n))
    if (selected("receive")) await oursConsume(oursStream, n, `bench-${runId}-warmup-none`, TrackingStrategy.None())
    if (selected("receive-manual")) {
      await oursConsume(oursStream, n, `bench-${runId}-warmup-manual10`, TrackingStrategy.Manual({ every: 10 }))
    }
    if (selected("raw-receive")) await rawConsume(oursStream, n)
  } catch (error) {
    log(`warm-up failed: ${error instanceof Error ? error.message : String(error)}`)
  } finally {
    for (const stream of [oursStream, rawStream]) {
      await withTimeout(`delete ${stream}`, 10_000, raw.deleteStream({ stream })).catch(() => {})
    }
  }
}

// ------------------------------------------------------------------------------------------ report
const LABEL: Record<Kind, string> = {
  produce: "produce: send vs raw loop",
  consume: "consume: receive (None) vs raw",
  "consume-manual10": "consume: receive (Manual every 10) vs raw",
  "consume-send-stream": "consume, raw consumer: stream written by send vs by raw loop"
}
const table = (): string => {
  const lines = [
    `| runtime | N | workflow | ours msg/s | raw msg/s | raw tuned msg/s | ours/raw (min-max) | ours/tuned | peak RSS MB (+growth) ours / raw / tuned | peak heap MB (+growth) ours / raw |`,
    `|---|---:|---|---:|---:|---:|---|---:|---:|---:|`
  ]
  const order: ReadonlyArray<Kind> = ["produce", "consume", "consume-manual10", "consume-send-stream"]
  const rows = [...results.values()].sort((x, y) => x.n - y.n || order.indexOf(x.kind) - order.indexOf(y.kind))
  for (const { n, kind, samples } of rows) {
    const oursRates = samples.map((s) => rate(n, s.ours))
    const rawRates = samples.map((s) => rate(n, s.raw))
    const tunedRates = samples.map((s) => rate(n, s.tuned ?? NaN))
    const tunedRatios = samples.map((s) => rate(n, s.ours) / rate(n, s.tuned ?? NaN)).filter(Number.isFinite)
    const ratios = samples.map((s) => rate(n, s.ours) / rate(n, s.raw)).filter(Number.isFinite)
    // The highest peak over the rounds, with the largest growth over the start of an operation.
    const peak = (pick: (s: Sample) => number | undefined) =>
      Math.max(-Infinity, ...samples.map((s) => pick(s) ?? NaN).filter(Number.isFinite))
    const cell = (who: "oursMem" | "rawMem" | "tunedMem", what: "rss" | "heap") =>
      fmtPeak(peak((s) => s[who]?.[what]), peak((s) => s[who]?.[what === "rss" ? "rssGrowth" : "heapGrowth"]))
    const mem = kind === "produce"
      ? ["-", "-"]
      : [
        `${cell("oursMem", "rss")} / ${cell("rawMem", "rss")} / ${cell("tunedMem", "rss")}`,
        `${cell("oursMem", "heap")} / ${cell("rawMem", "heap")}`
      ]
    const spread = ratios.length ? `${fmtRatio(median(ratios))} (${fmtRatio(Math.min(...ratios))}-${fmtRatio(Math.max(...ratios))})` : "-"
    lines.push(
      `| ${runtime} | ${n.toLocaleString("en-US")} | ${LABEL[kind]} | ${cellRate(median(oursRates))} | ${cellRate(median(rawRates))} | ${
        kind === "produce" || kind === "consume" ? cellRate(median(tunedRates)) : "-"
      } | ${spread} | ${tunedRatios.length ? fmtRatio(median(tunedRatios)) : "-"} | ${mem[0]} | ${mem[1]} |`
    )
  }
  return lines.join("\n")
}

const finish = async (code: number) => {
  console.log(`\n### ${runtime}, sizes ${sizes.join(",")}, ${rounds} round(s), median over rounds\n`)
  console.log(table())
  if (jsonFile) {
    const { writeFileSync } = await import("node:fs")
    writeFileSync(jsonFile, JSON.stringify({ runtime, sizes, rounds, results: [...results.values()] }, null, 1))
  }
  // The client's close can hang (e.g. after a stream went away under a consumer): bound it, then exit.
  await withTimeout("dispose", 5_000, ours.dispose()).catch(() => {})
  await withTimeout("close", 5_000, raw.close()).catch(() => {})
  await withTimeout("close", 5_000, tuned.close()).catch(() => {})
  process.exit(code)
}

const watchdog = setTimeout(() => {
  log(`deadline of ${deadlineSeconds} s reached: stopping with partial results`)
  void finish(1)
}, deadlineSeconds * 1000)
const started = performance.now()
log(`${runtime}; broker ${describeConnection(config)}; sizes ${sizes.join(",")}; ${rounds} round(s)`)
let failed = false
try {
  // Connect our layer before timing anything.
  await withTimeout("connect (ours)", 15_000, ours.runPromise(Effect.void))
  await warmUp()
  for (const n of sizes) {
    for (let round = 0; round < rounds; round++) await runRound(n, round)
  }
} catch (error) {
  failed = true
  log(`FAILED: ${error instanceof Error ? error.message : String(error)}`)
}
clearTimeout(watchdog)
failed ||= operationFailed || only === undefined &&
  [...results.values()].some((r) => r.samples.some((s) => !Number.isFinite(s.ours) || !Number.isFinite(s.raw)))
log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
await finish(failed ? 1 : 0)
