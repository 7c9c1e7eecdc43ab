// How Telemetry's tracer hands Effect's spans to an OpenTelemetry exporter (`layerSpanExport`), on
// the TestClock with an exporter that keeps what it is given: nothing before the interval, then
// every span once, with its parent, kind, attributes and status; batches of at most `batchSize`,
// one request at a time; a full queue drops; closing exports what waits, at once.
import { describe, expect, it } from "@effect/vitest"
import type { ExportResult } from "@opentelemetry/core"
import { resourceFromAttributes } from "@opentelemetry/resources"
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Effect, Fiber, TestClock } from "effect"
import { layerSpanExport } from "../../src/Telemetry.ts"

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

  it.effect("spans beyond maxQueueSize waiting are dropped; closing exports what waits without waiting for the interval", () =>
    Effect.gen(function*() {
      const kept = keeping()
      yield* Effect.gen(function*() {
        yield* spansNamed(8)
        expect(kept.requests).toEqual([])
      }).pipe(Effect.provide(layerSpanExport(kept.exporter, { resource, maxQueueSize: 5, interval: "1 minute" })))
      expect(kept.spans().map((s) => s.name)).toEqual(["span 0", "span 1", "span 2", "span 3", "span 4"])
    }))

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
