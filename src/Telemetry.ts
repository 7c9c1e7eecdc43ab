/**
 * effect-stream-offsets/telemetry: the metrics and spans of `effect-stream-offsets` (and of the
 * rest of your Effect app) exported through OpenTelemetry: Prometheus text on `/metrics`, and
 * traces over OTLP/HTTP when an endpoint is given.
 *
 * A second entry point so that the main module needs no OpenTelemetry package: its packages are
 * optional peer dependencies, installed by the apps that import this one.
 *
 * @module
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus"
import type { AttributeValue } from "@opentelemetry/api"
import type { Resource as OtelResource } from "@opentelemetry/resources"
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base"
import {
  Array as Arr,
  Cause,
  type Context,
  Duration,
  Effect,
  type Exit,
  Inspectable,
  Layer,
  Option,
  RuntimeFlags,
  Tracer as EffectTracer
} from "effect"
import process from "node:process"

/**
 * What {@link layer} exports, and where.
 *
 * @since 0.1.0
 * @category configuration
 */
export interface TelemetryOptions {
  /** The `service.name` of the resource (a Prometheus `target_info` label, a trace's service). */
  readonly serviceName: string
  /** Serve the metrics as Prometheus text on `http://host:metricsPort/metrics`; default: no metrics server. */
  readonly metricsPort?: number | undefined
  /** The address the metrics server listens on. Default all interfaces. */
  readonly metricsHost?: string | undefined
  /**
   * Where traces go over OTLP/HTTP (the collector's base URL, `/v1/traces` is added); default the
   * `OTEL_EXPORTER_OTLP_ENDPOINT` environment variable; none: no traces are exported.
   */
  readonly otlpEndpoint?: string | undefined
  /**
   * Called at most once, when exporting traces fails (an endpoint that does not answer): exporting
   * never slows or fails the app, so this is the only sign of it. Default: nothing.
   */
  readonly onExportError?: ((error: Error) => void) | undefined
  /** Export Effect's own fiber metrics (`effect_fiber_*`) too. Default false. */
  readonly runtimeMetrics?: boolean | undefined
  /** How long closing may wait for the last export. Default 1 second. */
  readonly shutdownTimeout?: number | undefined
}

/**
 * OpenTelemetry for the app: every Effect `Metric` (this module's `stream_offsets_*` and the app's
 * own) on a Prometheus endpoint, and every span over OTLP. Effect's metric tags become labels; an
 * incremental counter gets `_total`, a histogram `_bucket`, `_sum` and `_count`. Provide it once,
 * next to the broker's layer.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { OffsetStore, receive, StreamBroker } from "effect-stream-offsets"
 * import * as Telemetry from "effect-stream-offsets/telemetry"
 *
 * const live = Layer.mergeAll(
 *   OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerConfig())),
 *   Telemetry.layer({ serviceName: "billing", metricsPort: 9464 })
 * )
 * const program = receive({ stream: "orders", consumerName: "billing" }).pipe(Effect.provide(live))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: TelemetryOptions): Layer.Layer<never> => {
  const endpoint = options.otlpEndpoint ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT
  const shutdownTimeout = options.shutdownTimeout ?? 1000
  const port = options.metricsPort
  const metrics = port === undefined ? Layer.empty : Metrics.layer(() =>
    new PrometheusExporter({
      port,
      ...(options.metricsHost === undefined ? {} : { host: options.metricsHost }),
      endpoint: "/metrics",
      withoutScopeInfo: true
    }), { shutdownTimeout })
  const traces = endpoint === undefined || endpoint === "" ? Layer.empty : tracesLayer(endpoint, options.onExportError, shutdownTimeout)
  const resource = Resource.layerFromEnv(Resource.configToAttributes({ serviceName: options.serviceName }))
  return Layer.mergeAll(
    Layer.provide(Layer.merge(metrics, traces), resource),
    options.runtimeMetrics === true ? Layer.empty : RuntimeFlags.disableRuntimeMetrics
  )
}

/**
 * The tracer, loaded only when traces are asked for (the OTLP exporter takes about 100 ms to
 * load: a CLI with only `--metrics-port` starts that much sooner). Spans go in batches, in the
 * background; a collector that does not answer costs one bounded request per batch (2 s) and
 * drops that batch: the app's work never waits for it.
 */
const tracesLayer = (
  endpoint: string,
  onExportError: ((error: Error) => void) | undefined,
  shutdownTimeout: number
): Layer.Layer<never, never, Resource.Resource> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const { OTLPTraceExporter } = yield* Effect.promise(() => import("@opentelemetry/exporter-trace-otlp-http"))
    const resource = yield* Resource.Resource
    // The exporter adds `/v1/traces` only to the environment's endpoint; a given one is taken as is.
    const url = process.env.OTEL_EXPORTER_OTLP_ENDPOINT === endpoint ? undefined : `${endpoint.replace(/\/$/, "")}/v1/traces`
    const exporter = new OTLPTraceExporter({ ...(url === undefined ? {} : { url }), timeoutMillis: 2000 })
    return layerSpanExport(onExportError === undefined ? exporter : reportingOnce(exporter, onExportError), {
      resource,
      shutdownTimeout: Duration.millis(shutdownTimeout)
    })
  }))

// ---- spans: recorded as Effect records its own, exported in batches ----

/**
 * How {@link layerSpanExport} batches.
 *
 * @internal
 */
export interface SpanExportOptions {
  /** The resource every span is exported with; its `service.name` also names the instrumentation scope. */
  readonly resource: OtelResource
  /** How long closing may wait for the last export. Default 1 second. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** How often what waits is exported. Default 1 second. */
  readonly interval?: Duration.DurationInput | undefined
  /** At most this many spans a request. Default 512. */
  readonly batchSize?: number | undefined
  /** At most this many spans wait; more are dropped. Default 2048. */
  readonly maxQueueSize?: number | undefined
}

/**
 * How spans reach an OpenTelemetry exporter. Not through the OpenTelemetry SDK's tracer
 * (`@effect/opentelemetry`'s `Tracer.layer`): measured in a consumer, each span cost about 100 µs
 * there (the SDK's span, its sampler, ids, attribute checks and batch processor, run once a chunk
 * on code the processing of messages keeps cold), some 5 % of a `receive`. Here a span is recorded
 * as Effect's own tracer records it (a few fields), and turned into the exporter's spans a batch at
 * a time, in the background: every `interval`, at most `batchSize` a request, one request at a
 * time. Like the SDK's batch processor, at most `maxQueueSize` spans wait; more are dropped.
 * Closing exports what waits, within `shutdownTimeout`. Every span is exported (no sampler); an
 * OpenTelemetry context manager does not see Effect's spans. {@link layer} uses it with the OTLP
 * exporter (exported for the package's tests).
 *
 * @internal
 */
export const layerSpanExport = (exporter: SpanExporter, options: SpanExportOptions): Layer.Layer<never> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const batchSize = options.batchSize ?? 512
    const maxQueueSize = options.maxQueueSize ?? 2048
    const scope = { name: String(options.resource.attributes["service.name"] ?? "effect-stream-offsets") }
    const ended: Array<RecordedSpan> = []
    const exportBatches = Effect.suspend(() => {
      const batches = Arr.chunksOf(ended.splice(0, ended.length), batchSize)
      return Effect.forEach(batches, (batch) =>
        Effect.async<void>((resume) => {
          exporter.export(batch.map((span) => toReadableSpan(span, options.resource, scope)), () => resume(Effect.void))
        }), { discard: true })
    })
    // Finalizers run uninterruptibly: the last export is made interruptible so that the timeout bounds it.
    yield* Effect.addFinalizer(() =>
      exportBatches.pipe(
        Effect.zipRight(Effect.promise(() => exporter.shutdown())),
        Effect.interruptible,
        Effect.timeoutOption(options.shutdownTimeout ?? Duration.seconds(1))
      )
    )
    yield* exportBatches.pipe(Effect.delay(options.interval ?? Duration.seconds(1)), Effect.forever, Effect.forkScoped)
    const onEnd = (span: RecordedSpan) => {
      if (ended.length < maxQueueSize) ended.push(span)
    }
    return Layer.setTracer(EffectTracer.make({
      span: (name, parent, context, links, startTime, kind) =>
        new RecordedSpan(name, parent, context, links, startTime, kind, onEnd),
      context: (execution) => execution()
    }))
  }))

/** A span as Effect's own tracer records it; handed to `onEnd` once ended. */
class RecordedSpan implements EffectTracer.Span {
  readonly _tag = "Span"
  readonly spanId = randomHex(16)
  readonly traceId: string
  readonly sampled = true
  readonly attributes = new Map<string, unknown>()
  readonly events: Array<readonly [name: string, time: bigint, attributes: Record<string, unknown>]> = []
  readonly links: Array<EffectTracer.SpanLink>
  status: EffectTracer.SpanStatus
  constructor(
    readonly name: string,
    readonly parent: Option.Option<EffectTracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<EffectTracer.SpanLink>,
    startTime: bigint,
    readonly kind: EffectTracer.SpanKind,
    private readonly onEnd: (span: RecordedSpan) => void
  ) {
    this.traceId = parent._tag === "Some" ? parent.value.traceId : randomHex(32)
    this.links = [...links]
    this.status = { _tag: "Started", startTime }
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>) {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
    this.onEnd(this)
  }
  attribute(key: string, value: unknown) {
    this.attributes.set(key, value)
  }
  event(name: string, startTime: bigint, attributes?: Record<string, unknown>) {
    this.events.push([name, startTime, attributes ?? {}])
  }
  addLinks(links: ReadonlyArray<EffectTracer.SpanLink>) {
    this.links.push(...links)
  }
}

const randomHex = (length: number): string => {
  let hex = ""
  for (let i = 0; i < length; i++) hex += "0123456789abcdef"[Math.floor(Math.random() * 16)]
  return hex
}

/** OpenTelemetry's span kinds (`SpanKind` of `@opentelemetry/api`, as numbers). */
const spanKinds: Record<EffectTracer.SpanKind, number> = { internal: 0, server: 1, client: 2, producer: 3, consumer: 4 }

/**
 * An ended span as an exporter reads it (`ReadableSpan` of the SDK), with the status
 * `@effect/opentelemetry` gives: OK on success and on interruption alone (labelled), ERROR with the
 * first error's message otherwise, and that error as an `exception` event.
 */
const toReadableSpan = (span: RecordedSpan, resource: OtelResource, scope: { readonly name: string }): ReadableSpan => {
  const ended = span.status as Extract<EffectTracer.SpanStatus, { _tag: "Ended" }>
  const attributes: Record<string, AttributeValue> = {}
  for (const [key, value] of span.attributes) attributes[key] = attributeValue(value)
  const events = span.events.map(([name, time, eventAttributes]) => ({
    name,
    time: hrTime(time),
    attributes: attributesOf(eventAttributes)
  }))
  let status: { code: number; message?: string } = { code: 1 }
  if (ended.exit._tag === "Failure") {
    if (Cause.isInterruptedOnly(ended.exit.cause)) {
      status = { code: 1, message: Cause.pretty(ended.exit.cause) }
      attributes["span.label"] = "⚠︎ Interrupted"
      attributes["status.interrupted"] = true
    } else {
      const error = Cause.prettyErrors(ended.exit.cause)[0]
      status = { code: 2, ...(error === undefined ? {} : { message: error.message }) }
      if (error !== undefined) {
        events.push({
          name: "exception",
          time: hrTime(ended.endTime),
          attributes: { "exception.type": error.name, "exception.message": error.message, "exception.stacktrace": Cause.pretty(ended.exit.cause) }
        })
      }
    }
  }
  const parent = Option.getOrUndefined(span.parent)
  return {
    name: span.name,
    kind: spanKinds[span.kind],
    spanContext: () => ({ traceId: span.traceId, spanId: span.spanId, traceFlags: 1 }),
    ...(parent === undefined ? {} : { parentSpanContext: { traceId: parent.traceId, spanId: parent.spanId, traceFlags: 1 } }),
    startTime: hrTime(ended.startTime),
    endTime: hrTime(ended.endTime),
    duration: hrTime(ended.endTime - ended.startTime),
    status,
    attributes,
    links: span.links.map((link) => ({
      context: { traceId: link.span.traceId, spanId: link.span.spanId, traceFlags: 1 },
      attributes: attributesOf(link.attributes)
    })),
    events,
    ended: true,
    resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0
  }
}

const hrTime = (nanos: bigint): [number, number] => [Number(nanos / 1_000_000_000n), Number(nanos % 1_000_000_000n)]

const attributesOf = (record: Readonly<Record<string, unknown>>): Record<string, AttributeValue> =>
  Object.fromEntries(Object.entries(record).map(([key, value]) => [key, attributeValue(value)]))

/** Strings, numbers and booleans as they are; a bigint as its digits; anything else as text. */
const attributeValue = (value: unknown): AttributeValue =>
  typeof value === "string" || typeof value === "number" || typeof value === "boolean"
    ? value
    : typeof value === "bigint"
    ? value.toString()
    : Inspectable.toStringUnknown(value)

/** An exporter that reports its first failure, and only that one. */
const reportingOnce = (exporter: SpanExporter, report: (error: Error) => void): SpanExporter => {
  const said = { once: false }
  return {
    export: (spans: Array<ReadableSpan>, done) =>
      exporter.export(spans, (result) => {
        if (result.code !== 0 && !said.once) {
          said.once = true
          report(result.error ?? new Error("the export failed"))
        }
        done(result)
      }),
    shutdown: () => exporter.shutdown(),
    ...(exporter.forceFlush === undefined ? {} : { forceFlush: () => exporter.forceFlush!() })
  }
}
