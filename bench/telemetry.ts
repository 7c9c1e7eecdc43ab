/**
 * What exporting telemetry costs the workflows (issue #25: "with export on, the benchmark loses at
 * most 5 %"): `send` and `receive` of N messages in one process, each round once with
 * `Telemetry.layer` (metrics on a Prometheus endpoint, scraped once a round, and every span over
 * OTLP/HTTP to a collector stand-in in another process, bench/otlp-sink.mjs) and once without, in
 * alternating order.
 *
 *   node scripts/run.mjs bench/telemetry.ts [--size 1000000] [--rounds 5] [--uri URI]
 *   node_modules/.bin/bun bench/telemetry.ts ...
 *
 * Each timed operation includes closing its runtime: with export on, that is where the last spans
 * are flushed, so every span a run made is paid for inside its time. Building the runtime (the
 * connection, the metrics server, loading OpenTelemetry on the first round) is not timed: that
 * start-up is a fixed cost per process, measured on whole processes in bench/README.md. The run
 * fails (exit 1) when an operation fails, or when the collector did not get a span of each round
 * or the endpoint did not serve the consumer's count: a cost is only measured for export that
 * happened.
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { spawn } from "node:child_process"
import net from "node:net"
import process from "node:process"
import { createInterface } from "node:readline"
import {
  DEFAULT_URI,
  describeConnection,
  isTutorialMarker,
  OffsetStore,
  parseUri,
  receive,
  send,
  StreamBroker,
  TrackingStrategy,
  tutorialMessages
} from "../src/StreamOffsets.ts"
import * as Telemetry from "../src/Telemetry.ts"

// ------------------------------------------------------------------------------------------ flags
const argv = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const size = Number(flag("size") ?? "1000000")
const rounds = Number(flag("rounds") ?? "5")
/** What to export: metrics (the Prometheus endpoint), traces (OTLP), or both (default). */
const exports = (flag("export") ?? "metrics,traces").split(",")
const parsed = parseUri(flag("uri") ?? process.env.RABBITMQ_STREAM_URI ?? DEFAULT_URI)
if (
  !Number.isInteger(size) || size < 2 || !Number.isInteger(rounds) || rounds < 1 || parsed._tag === "Left" ||
  exports.some((e) => e !== "metrics" && e !== "traces")
) {
  console.error("usage: telemetry.ts [--size 1000000] [--rounds 5] [--export metrics,traces] [--uri URI]")
  process.exit(2)
}
const config = parsed.right
const runtime = process.versions.bun ? `Bun ${process.versions.bun}` : `Node ${process.versions.node}`
const runId = `${Date.now().toString(36)}-${process.pid}`

// ------------------------------------------------------------------------------------------ the collector
/** The collector stand-in: its port, and what it received once told to stop. */
const startCollector = async () => {
  const child = spawn(process.execPath, [new URL("./otlp-sink.mjs", import.meta.url).pathname], {
    stdio: ["pipe", "pipe", "inherit"]
  })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const first = await lines.next()
  const { port } = JSON.parse(String(first.value)) as { port: number }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      child.stdin!.end()
      const last = await lines.next()
      return JSON.parse(String(last.value)) as { requests: number; bytes: number; spans: Record<string, number> }
    }
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    }).on("error", reject)
  })

// ------------------------------------------------------------------------------------------ the runs
const collector = await startCollector()
const metricsPort = await freePort()
const broker = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(config)))
const exportErrors: Array<string> = []
const exporting = Telemetry.layer({
  serviceName: "bench-telemetry",
  metricsPort: exports.includes("metrics") ? metricsPort : undefined,
  otlpEndpoint: exports.includes("traces") ? collector.endpoint : "",
  onExportError: (error) => exportErrors.push(error.message)
})

type Variant = "plain" | "export"
type Workflow = "send" | "receive"
/**
 * A timed run: the workflow, and closing its runtime (with export on: the last spans' flush). Its
 * wall time, and the CPU time this process spent meanwhile (the broker, on the same cores, is not
 * in it: the steadier figure on a shared machine).
 */
interface Timing {
  readonly ms: number
  readonly cpuMs: number
  readonly closeMs: number
}
const times: Record<Workflow, Record<Variant, Array<Timing>>> = {
  send: { plain: [], export: [] },
  receive: { plain: [], export: [] }
}
let scraped = 0

/**
 * One workflow on a runtime of its own, timed from the workflow's start to the runtime's end.
 * With export on, the metrics endpoint is scraped in between (not timed: a Prometheus server does
 * that, not the app), a check that the workflow's counter (`counted`, the line with this label)
 * reached it.
 */
const timed = async <A>(
  variant: Variant,
  workflow: Effect.Effect<A, unknown, OffsetStore | StreamBroker>,
  counted: { readonly metric: string; readonly label: string }
) => {
  const layer = variant === "export" ? Layer.merge(broker, exporting) : broker
  const run = ManagedRuntime.make(layer)
  await run.runtime()
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const result = await run.runPromise(workflow)
  const t1 = performance.now()
  const cpu1 = process.cpuUsage(cpu0)
  if (variant === "export" && exports.includes("metrics")) {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const line = text.split("\n").find((l) => l.startsWith(`${counted.metric}_total{`) && l.includes(counted.label))
    if (line !== undefined && Number(line.split(" ").at(-1)) === size) scraped++
  }
  const t2 = performance.now()
  const cpu2 = process.cpuUsage()
  await run.dispose()
  const closeMs = performance.now() - t2
  const cpu3 = process.cpuUsage(cpu2)
  const cpuMs = (cpu1.user + cpu1.system + cpu3.user + cpu3.system) / 1000
  return { timing: { ms: t1 - t0 + closeMs, cpuMs, closeMs }, result }
}

const round = async (r: number) => {
  const order: ReadonlyArray<Variant> = r % 2 === 0 ? ["plain", "export"] : ["export", "plain"]
  const streams = { plain: `bench-telemetry-${runId}-${r}-plain`, export: `bench-telemetry-${runId}-${r}-export` }
  for (const variant of order) {
    const { result, timing } = await timed(variant, send({ stream: streams[variant], messages: tutorialMessages(size) }), {
      metric: "stream_offsets_messages_confirmed",
      label: `stream="${streams[variant]}"`
    })
    if (result.confirmed !== size) throw new Error(`send (${variant}) confirmed ${result.confirmed} of ${size}`)
    times.send[variant].push(timing)
  }
  // Both consumers read the same stream: the one the plain send wrote.
  for (const variant of order) {
    const { result, timing } = await timed(
      variant,
      receive({
        stream: streams.plain,
        consumerName: `bench-telemetry-${runId}-${r}-${variant}`,
        tracking: TrackingStrategy.None(),
        stop: { marker: isTutorialMarker }
      }),
      { metric: "stream_offsets_messages_consumed", label: `consumer="bench-telemetry-${runId}-${r}-${variant}"` }
    )
    if (result.messages !== size) throw new Error(`receive (${variant}) got ${result.messages} of ${size}`)
    times.receive[variant].push(timing)
  }
  await ManagedRuntime.make(StreamBroker.layer(config)).runPromise(
    Effect.flatMap(StreamBroker, (b) => Effect.forEach(Object.values(streams), (s) => Effect.ignore(b.deleteStream(s))))
  )
  const rate = (w: Workflow, v: Variant) => Math.round(size / times[w][v].at(-1)!.ms * 1000).toLocaleString("en-US")
  console.log(
    `round ${r + 1}: send ${rate("send", "plain")} msg/s plain, ${rate("send", "export")} with export; ` +
      `receive ${rate("receive", "plain")} plain, ${rate("receive", "export")} with export`
  )
}

// ------------------------------------------------------------------------------------------ report
const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

console.log(`${runtime}; broker ${describeConnection(config)}; ${size.toLocaleString("en-US")} messages, ${rounds} round(s)`)
let failed = false
try {
  for (let r = 0; r < rounds; r++) await round(r)
} catch (error) {
  failed = true
  console.error(`FAILED: ${error instanceof Error ? error.message : String(error)}`)
}
const received = await collector.stop()
const spans = (prefix: string) =>
  Object.entries(received.spans).filter(([name]) => name.startsWith(prefix)).reduce((n, [, count]) => n + count, 0)
console.log(`\n### What exporting ${exports.join(" and ")} costs: ${runtime}, ${size.toLocaleString("en-US")} messages, median of ${rounds} round(s)\n`)
console.log(
  "| workflow | plain msg/s | with export msg/s | wall with / plain (min-max) | CPU with / plain (min-max) | closing ms plain / with export | spans exported a run |"
)
console.log("|---|---:|---:|---|---|---:|---:|")
for (const workflow of ["send", "receive"] as const) {
  const { plain, export: exported } = times[workflow]
  if (plain.length === 0 || exported.length === 0) continue
  const ratio = (pick: (t: Timing) => number) => {
    const ratios = plain.slice(0, exported.length).map((p, i) => pick(exported[i]!) / pick(p))
    return `${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`
  }
  const rate = (runs: ReadonlyArray<Timing>) => Math.round(size / median(runs.map((t) => t.ms)) * 1000).toLocaleString("en-US")
  const closing = (runs: ReadonlyArray<Timing>) => median(runs.map((t) => t.closeMs)).toFixed(0)
  const perRun = Math.round(spans(workflow === "send" ? "send " : "process ") / exported.length)
  console.log(
    `| ${workflow} | ${rate(plain)} | ${rate(exported)} | ${ratio((t) => t.ms)} | ${ratio((t) => t.cpuMs)} | ${closing(plain)} / ${
      closing(exported)
    } | ${perRun.toLocaleString("en-US")} |`
  )
}
console.log(`\ncollector: ${received.requests} requests, ${(received.bytes / 1e6).toFixed(1)} MB; metrics scraped with the count ${scraped} time(s)`)
const exportRuns = times.send.export.length + times.receive.export.length
if (exportErrors.length > 0) console.error(`FAILED: exporting spans failed: ${exportErrors[0]}`)
const spansMissing = exports.includes("traces") && (spans("send ") === 0 || spans("process ") === 0)
const scrapesMissing = exports.includes("metrics") && scraped < exportRuns
if (!failed && (spansMissing || scrapesMissing || exportRuns === 0)) {
  console.error("FAILED: the collector got no spans of a workflow, or /metrics did not serve the count")
  failed = true
}
process.exit(failed || exportErrors.length > 0 ? 1 : 0)
