// `--metrics-port` and OTLP traces on the real broker, under Node: /metrics scraped while a
// consumer catches up (its lag goes to 0, its count is right), spans received by an OTLP/HTTP
// (JSON) receiver of our own, a port in use (one line, exit 2, before connecting), OpenTelemetry's
// variables (the traces endpoint, the samplers; bad values: one line, exit 2), a collector that does
// not answer (the workflow still succeeds, promptly, said once); Bun and Deno too.
import { describe, expect, it } from "@effect/vitest"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as net from "node:net"
import { cli, start, withStream } from "./helpers.ts"
import { freePort, sample, scrapeUntil } from "./scrape.ts"

interface OtlpSpan {
  readonly name: string
  readonly kind: number
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: Record<string, unknown> }>
}

/** An OTLP/HTTP receiver: every span of every JSON export to /v1/traces. */
const otlpReceiver = async () => {
  const spans: Array<OtlpSpan> = []
  const server = http.createServer((req, res) => {
    let body = ""
    req.on("data", (d) => (body += d))
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const json = JSON.parse(body)
        for (const rs of json.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []))
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return { spans, endpoint: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) }
}

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value
  return value === undefined ? undefined : Object.values(value)[0]
}

// OTLP's SpanKind: PRODUCER 4, CONSUMER 5.
const PRODUCER = 4
const CONSUMER = 5

describe("metrics on /metrics", () => {
  it("a consumer catching up: lag above 0 while held back, then 0; its consumed count right (after a send with --metrics-port)", () =>
    withStream("metrics-lag", async (stream) => {
      const sendPort = await freePort()
      const sent = await cli("node", "send", ["--stream", stream, "--count", "50000", "--metrics-port", String(sendPort)])
      expect(sent.stderr).toBe("")
      expect(sent.code).toBe(0)
      const port = await freePort()
      // Its stdout is not read at first: --print then waits, and the consumer falls behind.
      const receiving = start("node", "receive", ["--stream", stream, "--name", "lagging", "--no-marker", "--print", "--metrics-port", String(port)], {
        pausedStdout: true
      })
      try {
        const labels = { stream, consumer: "lagging" }
        const behind = await scrapeUntil(port, (t) => (sample(t, "stream_offsets_consumer_lag", labels) ?? 0) > 0)
        expect(sample(behind, "stream_offsets_consumer_lag", labels)).toBeGreaterThan(1000)
        receiving.readStdout()
        const caughtUp = await scrapeUntil(port, (t) =>
          sample(t, "stream_offsets_consumer_lag", labels) === 0 && sample(t, "stream_offsets_messages_consumed_total", labels) === 50000)
        expect(sample(caughtUp, "stream_offsets_connection_up", {})).toBe(1)
        expect(sample(caughtUp, "stream_offsets_offsets_stored_total", labels)).toBeGreaterThan(0)
        expect(sample(caughtUp, "stream_offsets_offset_store_latency_seconds_count", labels)).toBeGreaterThan(0)
        expect(caughtUp).toContain("# HELP stream_offsets_consumer_lag ")
      } finally {
        receiving.interrupt()
      }
      const done = await receiving.exitWithin(30_000)
      expect(done.code).toBe(0)
    }), 120_000)

  it("a named send: messages sent and confirmed, per stream and producer, while it runs", () =>
    withStream("metrics-send", async (stream) => {
      const port = await freePort()
      const sending = start("node", "send", ["--stream", stream, "--count", "300000", "--producer", "p1", "--metrics-port", String(port)])
      const labels = { stream, producer: "p1" }
      const text = await scrapeUntil(port, (t) => (sample(t, "stream_offsets_messages_confirmed_total", labels) ?? 0) > 0)
      const sentSoFar = sample(text, "stream_offsets_messages_sent_total", labels)!
      expect(sentSoFar).toBeGreaterThanOrEqual(sample(text, "stream_offsets_messages_confirmed_total", labels)!)
      expect(sentSoFar).toBeLessThanOrEqual(300000)
      expect(sample(text, "stream_offsets_confirm_latency_seconds_count", labels)).toBeGreaterThan(0)
      const done = await sending.exitWithin(60_000)
      expect(done.code).toBe(0)
      expect(done.stdout).toContain("Messages confirmed: true.")
    }), 120_000)

  it("Bun and Deno: a receive's /metrics counts its messages, lag 0 once caught up", () =>
    withStream("metrics-runtimes", async (stream) => {
      expect((await cli("node", "send", ["--stream", stream, "--count", "5000"])).code).toBe(0)
      for (const runtime of ["bun", "deno"] as const) {
        const port = await freePort()
        const receiving = start(runtime, "receive", ["--stream", stream, "--name", `m-${runtime}`, "--no-marker", "--metrics-port", String(port)])
        try {
          const labels = { stream, consumer: `m-${runtime}` }
          const text = await scrapeUntil(port, (t) =>
            sample(t, "stream_offsets_messages_consumed_total", labels) === 5000 && sample(t, "stream_offsets_consumer_lag", labels) === 0)
          expect(sample(text, "stream_offsets_connection_up", {}), runtime).toBe(1)
        } finally {
          receiving.interrupt()
        }
        const done = await receiving.exitWithin(30_000)
        expect(done.code, `${runtime}: ${done.stderr}`).toBe(0)
      }
    }), 120_000)

  it("a port in use: one line, exit 2, before connecting", async () => {
    const holder = net.createServer()
    await new Promise<void>((resolve) => holder.listen(0, resolve))
    const { port } = holder.address() as AddressInfo
    try {
      // A broker address where nothing answers: connecting would take the whole retry window.
      const uri = `rabbitmq-stream://guest:guest@127.0.0.1:${await freePort()}/`
      for (const script of ["send", "receive"]) {
        const r = await cli("node", script, ["--stream", "never-made", "--uri", uri, "--metrics-port", String(port)])
        expect(r.stderr).toBe(`error: --metrics-port ${port}: the port is in use\n`)
        expect(r.stdout).toBe("")
        expect(r.code).toBe(2)
      }
      const r = await cli("node", "send", ["--metrics-port", "70000"])
      expect(r.stderr.trim().split("\n")).toHaveLength(1)
      expect(r.code).toBe(2)
    } finally {
      holder.close()
    }
  }, 60_000)
})

describe("traces over OTLP", () => {
  it("send and receive: one span per batch and per chunk, with the messaging attributes", () =>
    withStream("otlp", async (stream) => {
      const receiver = await otlpReceiver()
      const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
      try {
        const sent = await cli("node", "send", ["--stream", stream, "--count", "20000", "--producer", "traced"], env)
        expect(sent.code).toBe(0)
        const received = await cli("node", "receive", ["--stream", stream, "--name", "billing"], env)
        expect(received.code).toBe(0)
        const sends = receiver.spans.filter((s) => s.name === `send ${stream}`)
        expect(sends.length).toBeGreaterThan(0)
        // Per batch, never per message; together they hold every message.
        expect(sends.length).toBeLessThan(20000)
        expect(sends.reduce((n, s) => n + Number(attribute(s, "messaging.batch.message_count")), 0)).toBe(20000)
        for (const span of sends) {
          expect(span.kind).toBe(PRODUCER)
          expect(attribute(span, "messaging.system")).toBe("rabbitmq")
          expect(attribute(span, "messaging.destination.name")).toBe(stream)
          expect(attribute(span, "messaging.operation.type")).toBe("send")
        }
        const processes = receiver.spans.filter((s) => s.name === `process ${stream}`)
        expect(processes.length).toBeGreaterThan(0)
        expect(processes.length).toBeLessThan(20000)
        expect(processes.reduce((n, s) => n + Number(attribute(s, "messaging.batch.message_count")), 0)).toBe(20000)
        for (const span of processes) {
          expect(span.kind).toBe(CONSUMER)
          expect(attribute(span, "messaging.consumer.group.name")).toBe("billing")
          expect(attribute(span, "messaging.operation.name")).toBe("process")
        }
        const names = new Set(receiver.spans.map((s) => s.name))
        expect(names).toContain("StreamOffsets.send")
        expect(names).toContain("StreamOffsets.receive")
        // Each chunk's span is a child of its workflow's span, in the workflow's trace; each span once.
        const [receiveSpan] = receiver.spans.filter((s) => s.name === "StreamOffsets.receive")
        for (const span of processes) {
          expect(span.traceId).toBe(receiveSpan!.traceId)
          expect(span.parentSpanId).toBe(receiveSpan!.spanId)
        }
        expect(new Set(receiver.spans.map((s) => s.spanId)).size).toBe(receiver.spans.length)
      } finally {
        await receiver.close()
      }
    }), 120_000)

  it("Bun and Deno: receive exports the same chunk spans, under its workflow's span", () =>
    withStream("otlp-runtimes", async (stream) => {
      expect((await cli("node", "send", ["--stream", stream, "--count", "5000"])).code).toBe(0)
      for (const runtime of ["bun", "deno"] as const) {
        const receiver = await otlpReceiver()
        try {
          const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint }
          const received = await cli(runtime, "receive", ["--stream", stream, "--name", `on-${runtime}`], env)
          expect(received.code, `${runtime}: ${received.stderr}`).toBe(0)
          const [workflow] = receiver.spans.filter((s) => s.name === "StreamOffsets.receive")
          const processes = receiver.spans.filter((s) => s.name === `process ${stream}`)
          expect(processes.reduce((n, s) => n + Number(attribute(s, "messaging.batch.message_count")), 0), runtime).toBe(5000)
          for (const span of processes) {
            expect(span.parentSpanId, runtime).toBe(workflow!.spanId)
            expect(attribute(span, "messaging.consumer.group.name")).toBe(`on-${runtime}`)
          }
        } finally {
          await receiver.close()
        }
      }
    }), 120_000)

  it("OpenTelemetry's variables: the traces endpoint alone; a sampler that keeps none; values not known: one line, exit 2, before connecting", () =>
    withStream("otlp-env", async (stream) => {
      const receiver = await otlpReceiver()
      try {
        const env = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces` }
        expect((await cli("node", "send", ["--stream", stream, "--count", "2000"], env)).code).toBe(0)
        expect(receiver.spans.filter((s) => s.name === "StreamOffsets.send")).toHaveLength(1)
        receiver.spans.length = 0
        for (const sampler of [{ OTEL_TRACES_SAMPLER: "always_off" }, { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" }]) {
          expect((await cli("node", "send", ["--stream", stream, "--count", "2000"], { ...env, ...sampler })).code).toBe(0)
        }
        expect(receiver.spans).toEqual([])
      } finally {
        await receiver.close()
      }
      // A broker address where nothing answers: connecting would take the whole retry window.
      const uri = `rabbitmq-stream://guest:guest@127.0.0.1:${await freePort()}/`
      const bad = [
        [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_TRACES_SAMPLER: "sometimes" }, /^error: OTEL_TRACES_SAMPLER=sometimes: not a sampler /],
        [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "10%" }, /^error: OTEL_TRACES_SAMPLER_ARG=10%: a ratio from 0 to 1 /],
        [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, /^error: OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318: not an http:\/\/ or https:\/\/ URL/],
        [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://user:s3cret@[::1" }, /^error: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http:\/\/user:\*\*\*@\[::1: not an http/]
      ] as const
      for (const [env, line] of bad) {
        const r = await cli("node", "receive", ["--stream", stream, "--uri", uri], env)
        expect(r.stderr.trim().split("\n"), JSON.stringify(env)).toHaveLength(1)
        expect(r.stderr).toMatch(line)
        expect(r.code).toBe(2)
      }
    }), 120_000)

  it("a collector that does not answer, or is not there: the workflow succeeds promptly, said once", () =>
    withStream("otlp-away", async (stream) => {
      // Accepts connections and never answers.
      const silent = net.createServer(() => undefined)
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
      const silentEndpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`
      const closedEndpoint = `http://127.0.0.1:${await freePort()}`
      try {
        for (const endpoint of [silentEndpoint, closedEndpoint]) {
          const started = Date.now()
          const r = await cli("node", "send", ["--stream", stream, "--count", "5000"], { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint })
          expect(r.code).toBe(0)
          expect(r.stdout).toContain("Messages confirmed: true.")
          // At most one line about it, and nothing else on stderr.
          const lines = r.stderr.split("\n").filter((l) => l !== "")
          expect(lines.length).toBeLessThanOrEqual(1)
          for (const line of lines) expect(line).toMatch(/^warning: traces are not exported to /)
          // Bounded: the export's own 2 s, the close's 1 s, and the process (tsx) starting.
          expect(Date.now() - started).toBeLessThan(20_000)
        }
      } finally {
        silent.close()
      }
    }), 120_000)
})
