// Proves that a stream-capable RabbitMQ answers: connect, declare a throw-away stream, delete it.
// Used by scripts/broker.sh. Exit 0: usable. Exit 1: one line on stderr saying why.
// The client throws from socket handlers on old brokers and never settles on a wrong password,
// so everything is bounded by a timer and uncaught errors end the probe instead of the process hanging.
import client from "rabbitmq-stream-js-client"

const port = Number(process.env.RABBITMQ_STREAM_PORT ?? "5552")
const timeoutMs = Number(process.env.PROBE_TIMEOUT_MS ?? "10000")

const fail = (why) => {
  process.stderr.write(`probe: ${why}\n`)
  process.exit(1)
}
process.on("uncaughtException", (e) => fail(`the client crashed: ${e?.message ?? e} (is this RabbitMQ >= 3.11 with rabbitmq_stream?)`))
process.on("unhandledRejection", (e) => fail(`the client failed: ${e?.message ?? e}`))
setTimeout(() => fail(`no stream-capable broker answered on localhost:${port} within ${timeoutMs} ms`), timeoutMs).unref()

try {
  const c = await client.connect({
    hostname: "localhost",
    port,
    username: "guest",
    password: "guest",
    vhost: "/",
    connectionName: "effect-stream-offsets-probe"
  })
  const stream = `probe-${process.pid}-${Date.now()}`
  await c.createStream({ stream, arguments: {} })
  await c.deleteStream({ stream })
  await c.close()
  process.exit(0)
} catch (e) {
  fail(e?.message ?? String(e))
}
