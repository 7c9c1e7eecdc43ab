// How the broker chunked a stream, read with the raw client as it ships: messages, chunks and
// messages per chunk up to the `marker`, and the time it took. The broker writes a chunk per batch
// of what arrived; larger chunks read faster, by every consumer.
//
//   node bench/chunks.mjs STREAM [PORT]
import process from "node:process"
import { connect, Offset } from "rabbitmq-stream-js-client"

const [stream, port = "5552"] = process.argv.slice(2)
const client = await connect({ hostname: "localhost", port: Number(port), username: "guest", password: "guest", vhost: "/" })
let count = 0, chunks = 0
const t0 = performance.now()
// The client's default policy (a credit back per chunk handled), counting the chunks.
const policy = {
  onSubscription: () => 1,
  onChunkReceived: async () => {},
  onChunkCompleted: async (request) => {
    chunks++
    await request(1)
  },
  requestCredits: (request, n) => request(n)
}
await new Promise((resolve) => {
  client.declareConsumer({ stream, offset: Offset.first(), creditPolicy: policy }, (message) => {
    count++
    if (message.content.toString() === "marker") resolve()
  })
})
const ms = performance.now() - t0
console.log(`${stream}: ${count} messages, ${chunks} chunks, ${(count / chunks).toFixed(0)} per chunk, read in ${ms.toFixed(0)} ms`)
await client.close().catch(() => {})
process.exit(0)
