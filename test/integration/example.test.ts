// The composition example (examples/orders-app.ts) as a user runs it: an app that writes each order
// into its own store, keeps the offset beside it, runs other fibers, and stops cleanly on SIGINT.
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
