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
  Cause,
  type Context,
  Duration,
  Effect,
  Either,
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
   * Where traces go over OTLP/HTTP (the collector's base URL, `/v1/traces` is added); default
   * OpenTelemetry's variables, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the whole URL) or
   * `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL); none: no traces are exported. The exporter reads
   * the others it knows (`OTEL_EXPORTER_OTLP_HEADERS`, ...) itself.
   */
  readonly otlpEndpoint?: string | undefined
  /**
   * Called at most once, when exporting traces fails (an endpoint that does not answer) or a span
   * is dropped (more than 2,048 waited for the collector): exporting never slows or fails the
   * app, so this is the only sign of it. Default: nothing.
   */
  readonly onExportError?: ((error: Error) => void) | undefined
  /** Export Effect's own fiber metrics (`effect_fiber_*`) too. Default false. */
  readonly runtimeMetrics?: boolean | undefined
  /** How long closing may wait for the last export. Default 1 second. */
  readonly shutdownTimeout?: number | undefined
  /**
   * Which traces are exported. Default: what `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`
   * say ({@link traceSamplerFromEnv}), else every trace (OpenTelemetry's default,
   * `parentbased_always_on`). Unsupported values there are ignored, as OpenTelemetry's SDK ignores
   * them; a CLI checks them first.
   */
  readonly sampler?: TraceSampler | undefined
}

/**
 * Which traces {@link layer} exports: OpenTelemetry's standard samplers. A trace is kept or left
 * out as a whole: a new trace (a span without a parent) is kept when its trace id falls in `ratio`
 * (OpenTelemetry's `traceidratio`: the same ids are kept by every process and client); a span with
 * a parent follows its parent's decision when `parentBased` (the `parentbased_*` samplers: a span
 * of an external trace that was not sampled is not either), and its trace id otherwise.
 *
 * @since 0.1.0
 * @category configuration
 */
export interface TraceSampler {
  /** The fraction of new traces exported, from 0 (none) to 1 (all). */
  readonly ratio: number
  /** A span with a parent is exported when its parent is. Default true. */
  readonly parentBased?: boolean | undefined
}

/**
 * The {@link TraceSampler} that OpenTelemetry's variables ask for: `OTEL_TRACES_SAMPLER`
 * (`always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`,
 * `parentbased_traceidratio`; unset: every trace) and, for the ratios, `OTEL_TRACES_SAMPLER_ARG`
 * (0 to 1; unset: 1). Anything else is a one-line error saying what is accepted.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import * as Telemetry from "effect-stream-offsets/telemetry"
 *
 * const sampler = Telemetry.traceSamplerFromEnv({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.1" })
 * // Either.right({ ratio: 0.1, parentBased: true })
 * ```
 *
 * @since 0.1.0
 * @category configuration
 */
export const traceSamplerFromEnv = (
  env: Readonly<Record<string, string | undefined>> = process.env
): Either.Either<TraceSampler, string> => {
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() || "parentbased_always_on"
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim()
  const ratio = arg === undefined || arg === "" ? 1 : Number(arg)
  const parentBased = name.startsWith("parentbased_")
  switch (parentBased ? name.slice("parentbased_".length) : name) {
    case "always_on":
      return Either.right({ ratio: 1, parentBased })
    case "always_off":
      return Either.right({ ratio: 0, parentBased })
    case "traceidratio":
      return Number.isFinite(ratio) && ratio >= 0 && ratio <= 1
        ? Either.right({ ratio, parentBased })
        : Either.left(`OTEL_TRACES_SAMPLER_ARG=${arg}: a ratio from 0 to 1 is expected (0.1: a trace in ten)`)
  }
  return Either.left(
    `OTEL_TRACES_SAMPLER=${env.OTEL_TRACES_SAMPLER}: not a sampler this exporter knows (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)`
  )
}

/**
 * OpenTelemetry for the app: every Effect `Metric` (this module's `stream_offsets_*` and the app's
 * own) on a Prometheus endpoint, and its spans over OTLP (every trace, or those `sampler` keeps).
 * Effect's metric tags become labels; an incremental counter gets `_total`, a histogram `_bucket`,
 * `_sum` and `_count`. Provide it once, next to the broker's layer.
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
  const endpoint = options.otlpEndpoint ?? otlpEndpointFromEnv()
  const shutdownTimeout = options.shutdownTimeout ?? 1000
  const port = options.metricsPort
  const metrics = port === undefined ? Layer.empty : Metrics.layer(() =>
    new PrometheusExporter({
      port,
      ...(options.metricsHost === undefined ? {} : { host: options.metricsHost }),
      endpoint: "/metrics",
      withoutScopeInfo: true
    }), { shutdownTimeout })
  const sampler = options.sampler ?? Either.getOrElse(traceSamplerFromEnv(), () => ({ ratio: 1 }))
  const traces = endpoint === undefined || endpoint === ""
    ? Layer.empty
    : tracesLayer(options.otlpEndpoint, options.onExportError, shutdownTimeout, sampler)
  const resource = Resource.layerFromEnv(Resource.configToAttributes({ serviceName: options.serviceName }))
  return Layer.mergeAll(
    Layer.provide(Layer.merge(metrics, traces), resource),
    options.runtimeMetrics === true ? Layer.empty : RuntimeFlags.disableRuntimeMetrics
  )
}

/** Where OpenTelemetry's variables send traces: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`. */
const otlpEndpointFromEnv = (): string | undefined =>
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined

/**
 * The tracer, loaded only when traces are asked for (the OTLP exporter takes about 100 ms to
 * load: a CLI with only `--metrics-port` starts that much sooner). Spans go in batches, in the
 * background; a collector that does not answer costs one bounded request per batch (2 s) and
 * drops that batch: the app's work never waits for it. The first failed export, or the first
 * span dropped for want of room, is reported, and nothing after it.
 */
const tracesLayer = (
  endpoint: string | undefined,
  onExportError: ((error: Error) => void) | undefined,
  shutdownTimeout: number,
  sampler: TraceSampler
): Layer.Layer<never, never, Resource.Resource> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const { OTLPTraceExporter } = yield* Effect.promise(() => import("@opentelemetry/exporter-trace-otlp-http"))
    const resource = yield* Resource.Resource
    // Without a URL the exporter reads the environment (and adds `/v1/traces` to the general endpoint).
    const url = endpoint === undefined ? undefined : `${endpoint.replace(/\/$/, "")}/v1/traces`
    const exporter = new OTLPTraceExporter({ ...(url === undefined ? {} : { url }), timeoutMillis: 2000 })
    const report = once(onExportError ?? (() => undefined))
    return layerSpanExport(exporter, {
      resource,
      sampler,
      shutdownTimeout: Duration.millis(shutdownTimeout),
      onExportFailed: (error) => report(() => error),
      onDropped: (maxQueueSize) =>
        report(() => new Error(`spans are dropped: more than ${maxQueueSize} waited for the collector`))
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
  /** Which traces are exported. Default all. */
  readonly sampler?: TraceSampler | undefined
  /** Called each time an export fails. */
  readonly onExportFailed?: ((error: Error) => void) | undefined
  /** Called each time a span is dropped because `maxQueueSize` wait. */
  readonly onDropped?: ((maxQueueSize: number) => void) | undefined
}

/**
 * How spans reach an OpenTelemetry exporter. Not through the OpenTelemetry SDK's tracer
 * (`@effect/opentelemetry`'s `Tracer.layer`): measured in a consumer, each span cost about 100 µs
 * there (the SDK's span, its sampler, ids, attribute checks and batch processor, run once a chunk
 * on code the processing of messages keeps cold), some 5 % of a `receive`. Here a span is recorded
 * as Effect's own tracer records it (a few fields), and turned into the exporter's spans a batch at
 * a time, in the background: every `interval`, or as soon as `batchSize` wait, at most
 * `batchSize` a request, one request at a time. Like the SDK's batch processor, at most
 * `maxQueueSize` spans wait; more are dropped. Only the sampled traces are kept
 * ({@link TraceSampler}). Closing exports what waits, within `shutdownTimeout`. An OpenTelemetry
 * context manager does not see Effect's spans. {@link layer} uses it with the OTLP exporter
 * (exported for the package's tests).
 *
 * @internal
 */
export const layerSpanExport = (exporter: SpanExporter, options: SpanExportOptions): Layer.Layer<never> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const batchSize = options.batchSize ?? 512
    const maxQueueSize = options.maxQueueSize ?? 2048
    const sample = sampling(options.sampler ?? { ratio: 1 })
    const scope = { name: String(options.resource.attributes["service.name"] ?? "effect-stream-offsets") }
    const ended: Array<RecordedSpan> = []
    // A batch at a time, taken when it goes: closing in the middle loses none that wait.
    const exportBatches: Effect.Effect<void> = Effect.suspend(() =>
      ended.length === 0 ? Effect.void : Effect.async<void>((resume) => {
        const batch = ended.splice(0, batchSize)
        exporter.export(batch.map((span) => toReadableSpan(span, options.resource, scope)), (result) => {
          if (result.code !== 0) options.onExportFailed?.(result.error ?? new Error("the export failed"))
          resume(Effect.void)
        })
      }).pipe(Effect.zipRight(exportBatches))
    )
    // Finalizers run uninterruptibly: the last export is made interruptible so that the timeout bounds it.
    yield* Effect.addFinalizer(() =>
      exportBatches.pipe(
        Effect.zipRight(Effect.promise(() => exporter.shutdown())),
        Effect.interruptible,
        Effect.timeoutOption(options.shutdownTimeout ?? Duration.seconds(1))
      )
    )
    // Opened when a batch waits: the export does not wait for the interval then.
    const full = yield* Effect.makeLatch(false)
    yield* full.await.pipe(
      Effect.timeoutOption(options.interval ?? Duration.seconds(1)),
      Effect.zipRight(full.close),
      Effect.zipRight(exportBatches),
      Effect.forever,
      Effect.forkScoped
    )
    const onEnd = (span: RecordedSpan) => {
      if (!span.sampled) return
      if (ended.length >= maxQueueSize) return options.onDropped?.(maxQueueSize)
      if (ended.push(span) === batchSize) full.unsafeOpen()
    }
    return Layer.setTracer(EffectTracer.make({
      span: (name, parent, context, links, startTime, kind) =>
        new RecordedSpan(name, parent, context, links, startTime, kind, onEnd, sample),
      context: (execution) => execution()
    }))
  }))

/** A span as Effect's own tracer records it; handed to `onEnd` once ended. */
class RecordedSpan implements EffectTracer.Span {
  readonly _tag = "Span"
  readonly spanId = randomHex(16)
  readonly traceId: string
  readonly sampled: boolean
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
    private readonly onEnd: (span: RecordedSpan) => void,
    sample: (traceId: string, parent: Option.Option<EffectTracer.AnySpan>) => boolean
  ) {
    this.traceId = parent._tag === "Some" ? parent.value.traceId : randomHex(32)
    this.sampled = sample(this.traceId, parent)
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

/**
 * A sampler's decision for a span: its parent's when parent-based, else whether the trace id falls
 * in the ratio, computed as OpenTelemetry's `TraceIdRatioBasedSampler` does (the four 32-bit words
 * of the id xor-ed, below `ratio` of 2^32), so that the same traces are kept everywhere.
 */
const sampling = (sampler: TraceSampler) => {
  const upperBound = sampler.ratio >= 1 ? 0x100000000 : Math.floor(Math.max(0, sampler.ratio) * 0xffffffff)
  const parentBased = sampler.parentBased ?? true
  return (traceId: string, parent: Option.Option<EffectTracer.AnySpan>): boolean => {
    if (parentBased && parent._tag === "Some") return parent.value.sampled
    if (upperBound === 0x100000000) return true
    let accumulated = 0
    for (let i = 0; i < 32; i += 8) accumulated = (accumulated ^ parseInt(traceId.slice(i, i + 8), 16)) >>> 0
    return accumulated < upperBound
  }
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

/** `report`, the first time only (the error is made then: a span dropped each time costs nothing). */
const once = (report: (error: Error) => void) => {
  let said = false
  return (error: () => Error) => {
    if (said) return
    said = true
    report(error())
  }
}
