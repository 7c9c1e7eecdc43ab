// The examples as a user runs them: examples/orders-app.ts (an app that writes each order into its
// own store, keeps the offset beside it, runs other fibers, and stops cleanly on SIGINT) and
// examples/batch-sink.ts (the Stream consumer: batches into a file, committed after each batch).
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cli, deleteStream, type Runtime, start, uniqueStream } from "./helpers.ts"

const runApp = async (runtime: Runtime, stream: string, dir: string, expected: number) => {
  const app = start(runtime, "../examples/orders-app", ["--stream", stream, "--dir", dir])
  await app.waitFor(`processed ${expected} orders`)
  app.interrupt()
  const exit = await app.exit
  expect(exit.stderr).toBe("")
  expect(exit.code).toBe(0)
  expect(exit.stdout).toContain(`orders-app: stopped after ${expected} orders; offset stored`)
}

describe("examples/orders-app.ts", () => {
  it("writes every order once, keeps the offset with the data, and resumes after a SIGINT", async () => {
    const stream = uniqueStream("orders")
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "orders-"))
    try {
      expect((await cli("bun", "send", ["--stream", stream, "--count", "30"])).code).toBe(0)
      await runApp("node", stream, dir, 30)
      const offsetFile = path.join(dir, `offset-${stream}-orders-app`)
      expect(fs.readFileSync(offsetFile, "utf8")).toBe("29")
      expect(fs.readFileSync(path.join(dir, "order-29"), "utf8")).toBe("marker")

      expect((await cli("bun", "send", ["--stream", stream, "--count", "10"])).code).toBe(0)
      // A second run (on Deno this time) processes only the ten new orders.
      await runApp("deno", stream, dir, 10)
      expect(fs.readFileSync(offsetFile, "utf8")).toBe("39")
      const orders = fs.readdirSync(dir).filter((f) => f.startsWith("order-"))
      expect(orders).toHaveLength(40)
    } finally {
      await deleteStream(stream)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

const lines = (file: string) =>
  fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)) : []

describe("examples/batch-sink.ts", () => {
  it("writes batches and commits each: runs to the end, resumes, stops on SIGINT; every message in the file once", async () => {
    const stream = uniqueStream("batches")
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "batches-"))
    const out = path.join(dir, "events.jsonl")
    try {
      expect((await cli("bun", "send", ["--stream", stream, "--count", "1500"])).code).toBe(0)
      const first = await cli("node", "example:batches", ["--stream", stream, "--out", out, "--until-end"])
      expect(first.stderr).toBe("")
      expect(first.stdout).toMatch(/wrote 1500 messages in \d+ batches/)

      // A second run (Deno) resumes after the last batch written.
      expect((await cli("bun", "send", ["--stream", stream, "--count", "300"])).code).toBe(0)
      const second = await cli("deno", "example:batches", ["--stream", stream, "--out", out, "--until-end"])
      expect(second.stdout).toMatch(/wrote 300 messages in \d+ batches/)

      // A third run (Bun) without an end: it writes what comes, then SIGINT stops it cleanly.
      expect((await cli("bun", "send", ["--stream", stream, "--count", "200"])).code).toBe(0)
      const app = start("bun", "../examples/batch-sink", ["--stream", stream, "--out", out])
      for (let i = 0; i < 300 && lines(out).length < 2000; i++) await new Promise((r) => setTimeout(r, 100))
      app.interrupt()
      const exit = await app.exit
      expect(exit.code).toBe(0)
      expect(exit.stdout).toMatch(/wrote 200 messages in \d+ batches/)

      const written = lines(out)
      expect(written).toHaveLength(2000)
      const offsets = written.map((l) => BigInt(l.offset))
      expect(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!)).toBe(true)
      expect(written.at(-1).body).toBe("marker")
      const offset = await cli("node", "offset", ["--stream", stream, "--name", "warehouse", "--json"])
      expect(JSON.parse(offset.stdout).storedOffset).toBe(String(offsets.at(-1)))
    } finally {
      await deleteStream(stream)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
