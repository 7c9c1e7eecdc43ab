// How Telemetry's tracer hands Effect's spans to an OpenTelemetry exporter (`layerSpanExport`), on
// the TestClock with an exporter that keeps what it is given: nothing before the interval, then
// every span once, with its parent, kind, attributes and status; batches of at most `batchSize`,
// one request at a time, and at once when a batch waits; a full queue drops (and says so); only
// sampled traces (OpenTelemetry's samplers, from its variables too); closing exports what waits.
import { describe, expect, it } from "@effect/vitest"
import type { ExportResult } from "@opentelemetry/core"
import { resourceFromAttributes } from "@opentelemetry/resources"
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Effect, Either, Fiber, TestClock, Tracer } from "effect"
import { layerSpanExport, traceSamplerFromEnv } from "../../src/Telemetry.ts"

const resource = resourceFromAttributes({ "service.name": "unit" })

/** An exporter that keeps each request's spans; `answer` decides when a request is done. */
const keeping = (answer: (done: () => void) => void = (done) => done()) => {
  const requests: Array<ReadonlyArray<ReadableSpan>> = []
  const exporter: SpanExporter = {
    export: (spans, done: (result: ExportResult) => void) => {
      requests.push(spans)
      answer(() => done({ code: 0 }))
    },
    shutdown: () => Promise.resolve()
  }
  return { requests, exporter, spans: () => requests.flat() }
}

/** Lets the export loop run (a few turns of the scheduler; the clock does not move). */
const settle = Effect.repeatN(Effect.yieldNow(), 10)

const spansNamed = (n: number) => Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) => Effect.withSpan(Effect.void, `span ${i}`))

describe("layerSpanExport", () => {
  it.effect("exports each ended span once, after the interval, with its parent, kind, attributes and status", () =>
    Effect.gen(function*() {
      const kept = keeping()
      yield* Effect.gen(function*() {
        yield* Effect.void.pipe(
          Effect.withSpan("process orders", { kind: "consumer", attributes: { "messaging.batch.message_count": 3, offset: 7n } }),
          Effect.withSpan("receive")
        )
        expect(kept.requests).toEqual([])
        yield* TestClock.adjust("1 second")
        expect(kept.spans()).toHaveLength(2)
        yield* TestClock.adjust("5 seconds")
      }).pipe(Effect.provide(layerSpanExport(kept.exporter, { resource, interval: "1 second" })))
      const [child, parent] = kept.spans()
      expect([child?.name, parent?.name]).toEqual(["process orders", "receive"])
      expect(child!.kind).toBe(4)
      expect(parent!.kind).toBe(0)
      expect(child!.attributes).toEqual({ "messaging.batch.message_count": 3, offset: "7" })
      expect(child!.spanContext().traceId).toBe(parent!.spanContext().traceId)
      expect(child!.parentSpanContext?.spanId).toBe(parent!.spanContext().spanId)
      expect(parent!.parentSpanContext).toBeUndefined()
      expect(child!.status).toEqual({ code: 1 })
      expect(child!.resource).toBe(resource)
      expect(child!.instrumentationScope.name).toBe("unit")
      expect(kept.spans()).toHaveLength(2)
    }))

  it.effect("a failure is an ERROR with the error's message and an exception event; an interruption alone is OK, labelled", () =>
    Effect.gen(function*() {
      const kept = keeping()
      yield* Effect.gen(function*() {
        yield* Effect.exit(Effect.fail(new Error("the offset store is down")).pipe(Effect.withSpan("store")))
        yield* Effect.exit(Effect.interrupt.pipe(Effect.withSpan("stopped")))
      }).pipe(Effect.provide(layerSpanExport(kept.exporter, { resource })))
      const [failed, interrupted] = kept.spans()
      expect(failed!.status).toEqual({ code: 2, message: "the offset store is down" })
      expect(failed!.events.map((e) => [e.name, e.attributes?.["exception.message"]])).toEqual([
        ["exception", "the offset store is down"]
      ])
      expect(interrupted!.status.code).toBe(1)
      expect(interrupted!.attributes["status.interrupted"]).toBe(true)
    }))

  it.effect("at most batchSize spans a request, one request at a time", () =>
    Effect.gen(function*() {
      const answers: Array<() => void> = []
      const kept = keeping((done) => answers.push(done))
      yield* Effect.gen(function*() {
        yield* spansNamed(10)
        yield* TestClock.adjust("1 second")
        expect(kept.requests.map((r) => r.length)).toEqual([4])
        answers.shift()!()
        yield* Effect.yieldNow()
        expect(kept.requests.map((r) => r.length)).toEqual([4, 4])
        answers.shift()!()
        yield* Effect.yieldNow()
        expect(kept.requests.map((r) => r.length)).toEqual([4, 4, 2])
        answers.shift()!()
      }).pipe(Effect.provide(layerSpanExport(kept.exporter, { resource, batchSize: 4, interval: "1 second" })))
      expect(kept.spans().map((s) => s.name)).toEqual(Array.from({ length: 10 }, (_, i) => `span ${i}`))
    }))

  it.effect("closing while a request is out: the spans still waiting are exported, none lost", () =>
    Effect.gen(function*() {
      // The first request is never answered; the others at once.
      const kept = keeping((done) => kept.requests.length > 1 && done())
      yield* Effect.gen(function*() {
        yield* spansNamed(10)
        yield* TestClock.adjust("1 second")
        expect(kept.requests.map((r) => r.length)).toEqual([4])
      }).pipe(Effect.provide(layerSpanExport(kept.exporter, { resource, batchSize: 4, interval: "1 second" })))
      expect(kept.requests.map((r) => r.length)).toEqual([4, 4, 2])
    }))

  it.effect("a failed export is said, with the exporter's error, and the next batch still goes", () =>
    Effect.gen(function*() {
      const failures: Array<string> = []
      const requests: Array<number> = []
      const exporter: SpanExporter = {
        export: (spans, done: (result: ExportResult) => void) => {
          requests.push(spans.length)
          done(requests.length === 1 ? { code: 1, error: new Error("connect ECONNREFUSED") } : { code: 0 })
        },
        shutdown: () => Promise.resolve()
      }
      yield* Effect.gen(function*() {
        yield* spansNamed(3)
        yield* TestClock.adjust("1 second")
        yield* spansNamed(2)
      }).pipe(Effect.provide(layerSpanExport(exporter, { resource, onExportFailed: (e) => failures.push(e.message) })))
      expect(requests).toEqual([3, 2])
      expect(failures).toEqual(["connect ECONNREFUSED"])
    }))

  it.effect("a full batch goes at once, without waiting for the interval", () =>
    Effect.gen(function*() {
      const kept = keeping()
      yield* Effect.gen(function*() {
        yield* spansNamed(2)
        yield* settle
        expect(kept.requests).toEqual([])
        yield* spansNamed(1)
        yield* settle
        expect(kept.requests.map((r) => r.length)).toEqual([3])
        yield* spansNamed(3)
        yield* settle
        expect(kept.requests.map((r) => r.length)).toEqual([3, 3])
      }).pipe(Effect.provide(layerSpanExport(kept.exporter, { resource, batchSize: 3, interval: "1 minute" })))
    }))

  it.effect("spans beyond maxQueueSize waiting are dropped, each said; closing exports what waits without waiting for the interval", () =>
    Effect.gen(function*() {
      const kept = keeping()
      const dropped: Array<number> = []
      yield* Effect.gen(function*() {
        yield* spansNamed(8)
        expect(kept.requests).toEqual([])
      }).pipe(Effect.provide(
        layerSpanExport(kept.exporter, { resource, maxQueueSize: 5, interval: "1 minute", onDropped: (n) => dropped.push(n) })
      ))
      expect(kept.spans().map((s) => s.name)).toEqual(["span 0", "span 1", "span 2", "span 3", "span 4"])
      expect(dropped).toEqual([5, 5, 5])
    }))

  // Trace ids whose four 32-bit words xor to 1 (kept by any ratio above 0) and to 0xffffffff (kept by 1 only).
  const low = Tracer.externalSpan({ traceId: "00000000000000000000000000000001", spanId: "00000000000000aa", sampled: true })
  const high = Tracer.externalSpan({ traceId: "ffffffff000000000000000000000000", spanId: "00000000000000bb", sampled: true })
  const unsampled = Tracer.externalSpan({ traceId: "00000000000000000000000000000001", spanId: "00000000000000cc", sampled: false })
  const exportedUnder = (sampler: { ratio: number; parentBased?: boolean }) =>
    Effect.gen(function*() {
      const kept = keeping()
      yield* Effect.gen(function*() {
        for (const [parent, name] of [[low, "low"], [high, "high"], [unsampled, "unsampled"]] as const) {
          yield* Effect.withSpan(Effect.withSpan(Effect.void, `${name} child`), name, { parent })
        }
        yield* Effect.withSpan(Effect.withSpan(Effect.void, "root child"), "root", { root: true })
      }).pipe(Effect.provide(layerSpanExport(kept.exporter, { resource, sampler })))
      return kept.spans().map((s) => s.name).sort()
    })

  it.effect("sampling by trace id (the ids OpenTelemetry's traceidratio keeps), whole traces, the parent's decision when parent-based", () =>
    Effect.gen(function*() {
      const all = ["high", "high child", "low", "low child", "root", "root child", "unsampled", "unsampled child"]
      expect(yield* exportedUnder({ ratio: 1, parentBased: false })).toEqual(all)
      // Parent-based (the default): a remote parent that was not sampled leaves its trace out.
      expect(yield* exportedUnder({ ratio: 1 })).toEqual(all.filter((n) => !n.startsWith("unsampled")))
      expect(yield* exportedUnder({ ratio: 0 })).toEqual(["high", "high child", "low", "low child"])
      expect(yield* exportedUnder({ ratio: 0, parentBased: false })).toEqual([])
      // Half: by the trace id alone; the new trace (a random id) is kept or left out whole.
      const half = yield* exportedUnder({ ratio: 0.5, parentBased: false })
      expect(half.filter((n) => !n.startsWith("root"))).toEqual(["low", "low child", "unsampled", "unsampled child"])
      expect(half.filter((n) => n.startsWith("root")).length % 2).toBe(0)
    }))

  it("traceSamplerFromEnv reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG; anything else is one line saying what is accepted", () => {
    expect(traceSamplerFromEnv({})).toEqual(Either.right({ ratio: 1, parentBased: true }))
    expect(traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "always_off" })).toEqual(Either.right({ ratio: 0, parentBased: false }))
    expect(traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "parentbased_always_off" })).toEqual(Either.right({ ratio: 0, parentBased: true }))
    expect(traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "always_on", OTEL_TRACES_SAMPLER_ARG: "0.1" })).toEqual(
      Either.right({ ratio: 1, parentBased: false })
    )
    expect(traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "TraceIdRatio", OTEL_TRACES_SAMPLER_ARG: "0.25" })).toEqual(
      Either.right({ ratio: 0.25, parentBased: false })
    )
    expect(traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio" })).toEqual(Either.right({ ratio: 1, parentBased: true }))
    expect(traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" })).toEqual(
      Either.left("OTEL_TRACES_SAMPLER_ARG=2: a ratio from 0 to 1 is expected (0.1: a trace in ten)")
    )
    expect(traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "ten" })).toEqual(
      Either.left("OTEL_TRACES_SAMPLER_ARG=ten: a ratio from 0 to 1 is expected (0.1: a trace in ten)")
    )
    const unknown = traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "jaeger_remote" })
    expect(Either.isLeft(unknown) && unknown.left).toMatch(/^OTEL_TRACES_SAMPLER=jaeger_remote: not a sampler .*\(always_on, .*parentbased_traceidratio\)$/)
  })

  it.effect("closing waits for the last export at most shutdownTimeout", () =>
    Effect.gen(function*() {
      const kept = keeping(() => {}) // never answers
      const closing = yield* Effect.withSpan(Effect.void, "last").pipe(
        Effect.provide(layerSpanExport(kept.exporter, { resource, shutdownTimeout: "2 seconds" })),
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      expect(closing.unsafePoll()).toBeNull()
      expect(kept.spans().map((s) => s.name)).toEqual(["last"])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
    }))
})
