// Prometheus text from a CLI's --metrics-port, for telemetry.test.ts and telemetry-faults.test.ts.
import type { AddressInfo } from "node:net"
import * as net from "node:net"

/** A port nothing listens on now. */
export const freePort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

/** The value of a sample of /metrics whose labels include `labels`; undefined when absent. */
export const sample = (text: string, name: string, labels: Record<string, string>): number | undefined => {
  for (const line of text.split("\n")) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const have = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3])
  }
  return undefined
}

export const scrape = async (port: number) => {
  try {
    return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  } catch {
    return ""
  }
}

/** Scrapes until `done` holds (or fails after `ms` with the last scrape). */
export const scrapeUntil = async (port: number, done: (text: string) => boolean, ms = 60_000) => {
  const deadline = Date.now() + ms
  let text = ""
  while (Date.now() < deadline) {
    text = await scrape(port)
    if (done(text)) return text
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`/metrics never got there; last scrape:\n${text}`)
}
