import { Effect, Either, Layer, ManagedRuntime } from "effect"
import { OffsetStore, parseUri, receive, StreamBroker, TrackingStrategy } from "../src/StreamOffsets.ts"
const rt = ManagedRuntime.make(OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(Either.getOrThrow(parseUri("rabbitmq-stream://guest:guest@localhost:5552/%2f"))))))
for (const stop of [{ marker: false, untilEnd: true }, { marker: false, idleTimeout: "1 second" }] as const) {
  let chunks = 0
  let last = -1
  const t = performance.now()
  const s = await rt.runPromise(receive({ stream: "perf2", consumerName: `idle-${Date.now()}`, tracking: TrackingStrategy.None(), stop, onMessage: (_, i) => Effect.sync(() => { if (i !== last + 1) chunks++; last = i }) }))
  console.log(JSON.stringify(stop), s.messages, ((performance.now() - t) / 1000).toFixed(2), "s")
}
await rt.dispose()
