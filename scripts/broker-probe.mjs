// Proves that a stream-capable RabbitMQ answers: connect, declare a throw-away stream, delete it.
// Used by scripts/broker.sh. Exit 0: usable. Exit 1: one line on stderr saying why.
// The client throws from socket handlers on old brokers and never settles on a wrong password (nor
// when a plain client talks to a TLS port), so everything is bounded by a timer and uncaught errors
// end the probe instead of the process hanging.
//
// Environment (all optional; without any of the PROBE_TLS_* the probe connects in plain TCP):
//   PROBE_PORT         port (default $RABBITMQ_STREAM_PORT, else 5552)
//   PROBE_HOST         host name (default localhost; TLS checks the server certificate against it)
//   PROBE_TLS_CA       TLS with this CA file (PEM): the server certificate must chain to it
//   PROBE_TLS_CERT     TLS with this client certificate (PEM) ...
//   PROBE_TLS_KEY      ... and its key (PEM), for a broker that requires one (mutual TLS)
//   PROBE_TIMEOUT_MS   give up after this long (default 10000)
import { readFileSync } from "node:fs"
import client from "rabbitmq-stream-js-client"

const env = process.env
const port = Number(env.PROBE_PORT || env.RABBITMQ_STREAM_PORT || "5552")
const hostname = env.PROBE_HOST || "localhost"
const timeoutMs = Number(env.PROBE_TIMEOUT_MS || "10000")
const tls = Boolean(env.PROBE_TLS_CA || env.PROBE_TLS_CERT || env.PROBE_TLS_KEY)
const where = `${tls ? "TLS on " : ""}${hostname}:${port}`

const fail = (why) => {
  process.stderr.write(`probe: ${why}\n`)
  process.exit(1)
}
const pem = (name) => {
  const file = env[name]
  if (!file) return undefined
  try {
    return readFileSync(file)
  } catch (e) {
    fail(`cannot read ${name}=${file}: ${e?.message ?? e}`)
  }
}
const ssl = tls ? { ca: pem("PROBE_TLS_CA"), cert: pem("PROBE_TLS_CERT"), key: pem("PROBE_TLS_KEY") } : undefined
const code = (e) => (e?.code ? ` (${e.code})` : "")

process.on("uncaughtException", (e) =>
  fail(`the client crashed on ${where}: ${e?.message ?? e}${code(e)} (is this RabbitMQ >= 3.11 with rabbitmq_stream?)`)
)
process.on("unhandledRejection", (e) => fail(`the client failed on ${where}: ${e?.message ?? e}${code(e)}`))
setTimeout(() => fail(`no stream-capable broker answered on ${where} within ${timeoutMs} ms`), timeoutMs).unref()
// Node ends with 13 when nothing is left to wait for but the connection never settled: the
// broker closed a connection the client ignores (say, a plain client on a TLS port).
process.on("exit", () => {
  if (process.exitCode !== 13) return
  process.stderr.write(`probe: the connection to ${where} closed before the client settled (a plain client on a TLS port?)\n`)
  process.exitCode = 1
})

try {
  const c = await client.connect({
    hostname,
    port,
    username: "guest",
    password: "guest",
    vhost: "/",
    connectionName: "effect-stream-offsets-probe",
    ...(ssl ? { ssl } : {})
  })
  const stream = `probe-${process.pid}-${Date.now()}`
  await c.createStream({ stream, arguments: {} })
  await c.deleteStream({ stream })
  await c.close()
  process.exit(0)
} catch (e) {
  fail(`${where}: ${e?.message ?? String(e)}${code(e)}`)
}
