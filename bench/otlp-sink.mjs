// A stand-in for an OpenTelemetry collector, in its own process (as a collector would be): it
// accepts every OTLP/HTTP JSON export on /v1/traces and counts the spans by name. It prints
// `{"port":N}` once listening, and `{"requests":..,"bytes":..,"spans":{name:count}}` when its
// standard input ends, then exits. Used by bench/telemetry.ts.
import http from "node:http"
import process from "node:process"

const spans = {}
let requests = 0
let bytes = 0
const server = http.createServer((req, res) => {
  const parts = []
  req.on("data", (part) => {
    bytes += part.length
    parts.push(part)
  })
  req.on("end", () => {
    requests++
    try {
      const body = JSON.parse(Buffer.concat(parts).toString("utf8"))
      for (const resource of body.resourceSpans ?? []) {
        for (const scope of resource.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) spans[span.name] = (spans[span.name] ?? 0) + 1
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    } catch {
      res.writeHead(400).end()
    }
  })
})
server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`))
process.stdin.resume()
process.stdin.on("end", () => {
  process.stdout.write(`${JSON.stringify({ requests, bytes, spans })}\n`)
  process.exit(0)
})
