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
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, RuntimeFlags } from "effect"
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
 * The tracer, loaded only when traces are asked for (the trace SDK and the OTLP exporter take
 * about 170 ms to load: a CLI with only `--metrics-port` starts that much sooner). Spans go in
 * batches, in the background; a collector that does not answer costs one bounded request per
 * batch (2 s) and drops that batch: the app's work never waits for it.
 */
const tracesLayer = (
  endpoint: string,
  onExportError: ((error: Error) => void) | undefined,
  shutdownTimeout: number
): Layer.Layer<never, never, Resource.Resource> =>
  Layer.unwrapEffect(Effect.promise(async () => {
    const [NodeSdk, Tracer, { OTLPTraceExporter }, { BatchSpanProcessor }] = await Promise.all([
      import("@effect/opentelemetry/NodeSdk"),
      import("@effect/opentelemetry/Tracer"),
      import("@opentelemetry/exporter-trace-otlp-http"),
      import("@opentelemetry/sdk-trace-base")
    ])
    // The exporter adds `/v1/traces` only to the environment's endpoint; a given one is taken as is.
    const url = process.env.OTEL_EXPORTER_OTLP_ENDPOINT === endpoint ? undefined : `${endpoint.replace(/\/$/, "")}/v1/traces`
    const exporter = new OTLPTraceExporter({ ...(url === undefined ? {} : { url }), timeoutMillis: 2000 })
    const processor = new BatchSpanProcessor(onExportError === undefined ? exporter : reportingOnce(exporter, onExportError), {
      exportTimeoutMillis: 2000,
      maxQueueSize: 2048
    })
    return Layer.provide(Tracer.layer, NodeSdk.layerTracerProvider(processor, { shutdownTimeout }))
  }))

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
