// A real Prometheus server (Debian's package, run by `broker.sh prometheus up`) scraping a running
// `receive --metrics-port` every second: what it stores is what a dashboard or an alert reads. The
// consumed count and the lag, queried through Prometheus' HTTP API, follow the consumer: the lag is
// above 0 while it is held back, then 0 once it caught up.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { cli, run, start, withStream } from "./helpers.ts"
import { freePort } from "./scrape.ts"

const prometheusPort = Number(process.env.PROMETHEUS_PORT ?? "9090")
const prometheus = async (...args: Array<string>) => {
  const result = await run("bash", ["scripts/broker.sh", "prometheus", ...args], {}, 180_000)
  expect(result.code, result.stderr).toBe(0)
}

beforeAll(() => prometheus("up"), 200_000)
afterAll(() => prometheus("down"), 60_000)

/** One instant query: the value of each series it returns, by the series' labels. */
const query = async (promql: string): Promise<ReadonlyArray<{ readonly labels: Record<string, string>; readonly value: number }>> => {
  const response = await fetch(`http://127.0.0.1:${prometheusPort}/api/v1/query?query=${encodeURIComponent(promql)}`)
  const body = await response.json() as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }
  expect(body.status).toBe("success")
  return body.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }))
}

/** Queries until `done` holds for the values (fails after `ms` with the last ones). */
const queryUntil = async (promql: string, done: (values: ReadonlyArray<number>) => boolean, ms = 60_000) => {
  const deadline = Date.now() + ms
  let values: ReadonlyArray<number> = []
  while (Date.now() < deadline) {
    values = (await query(promql)).map((r) => r.value)
    if (done(values)) return values
    await new Promise((r) => setTimeout(r, 500))
  }
  throw new Error(`${promql}: still ${JSON.stringify(values)} after ${ms} ms`)
}

describe("receive --metrics-port, scraped by Prometheus", () => {
  it("the consumed count and the lag as Prometheus stores them: lag above 0 while held back, then 0 with every message counted", () =>
    withStream("prometheus", async (stream) => {
      const total = 50_000
      const sent = await cli("node", "send", ["--stream", stream, "--count", String(total)])
      expect(sent.code, sent.stderr).toBe(0)
      const port = await freePort()
      await prometheus("scrape", `127.0.0.1:${port}`)
      // Its stdout is not read at first: --print then waits, and the consumer stays behind.
      const receiving = start("node", "receive", ["--stream", stream, "--name", "dashboard", "--no-marker", "--print", "--metrics-port", String(port)], {
        pausedStdout: true
      })
      try {
        const selector = `{stream="${stream}",consumer="dashboard"}`
        // The target is up for Prometheus (it scraped it), and the lag it stored is above 0.
        await queryUntil(`up{instance="127.0.0.1:${port}"}`, (v) => v[0] === 1)
        await queryUntil(`stream_offsets_consumer_lag${selector}`, (v) => v.length === 1 && v[0]! > 0)
        receiving.readStdout()
        await queryUntil(`stream_offsets_messages_consumed_total${selector}`, (v) => v[0] === total)
        await queryUntil(`stream_offsets_consumer_lag${selector}`, (v) => v[0] === 0)
        // The connection's state, as an alert on it would read it.
        expect((await query(`stream_offsets_connection_up{instance="127.0.0.1:${port}"}`)).map((r) => r.value)).toEqual([1])
      } finally {
        receiving.interrupt()
        await prometheus("scrape")
      }
      const done = await receiving.exitWithin(30_000)
      expect(done.code, done.stderr).toBe(0)
    }), 180_000)
})
