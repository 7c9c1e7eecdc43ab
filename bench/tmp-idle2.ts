import { Effect, Either, Layer, ManagedRuntime, Stream } from "effect"
import { OffsetStore, parseUri, StartPosition, StreamBroker } from "../src/StreamOffsets.ts"
const rt = ManagedRuntime.make(OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layer(Either.getOrThrow(parseUri("rabbitmq-stream://guest:guest@localhost:5552/%2f"))))))
const n = await rt.runPromise(Effect.scoped(Effect.gen(function*() {
  const b = yield* StreamBroker
  const s = yield* b.subscribe({ stream: "cmpnew", start: StartPosition.First() })
  return yield* s.pipe(Stream.timeout("1 second"), Stream.chunks, Stream.runFold([0, 0], ([c, m], ch) => [c + 1, m + ch.length]))
})))
console.log("chunks, messages:", n)
await rt.dispose()
