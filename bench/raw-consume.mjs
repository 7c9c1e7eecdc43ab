// The plain loop a user would write with rabbitmq-stream-js-client as it ships: consume a stream
// from the first message until the body is `marker`, print the count, exit. Plain JavaScript (no
// TypeScript loader), for bench/process.ts to time as a whole process.
//
//   node bench/raw-consume.mjs STREAM [PORT]
import process from "node:process"
import { connect, Offset } from "rabbitmq-stream-js-client"

const [stream, port = "5552"] = process.argv.slice(2)
const client = await connect({ hostname: "localhost", port: Number(port), username: "guest", password: "guest", vhost: "/" })
let count = 0
await new Promise((resolve) => {
  client.declareConsumer({ stream, offset: Offset.first() }, (message) => {
    count++
    if (message.content.toString() === "marker") resolve()
  })
})
console.log(`raw loop: ${count} messages`)
await client.close().catch(() => {})
process.exit(0)
