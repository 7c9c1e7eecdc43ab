// A broker that really goes away (the Erlang VM stops and starts again, `broker.sh restart`), not
// just closed connections: consumers and named producers carry on; a stop signal still wins.
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cli, expectEachMessageOnce, namedSendAcross, run, start, withStream } from "./helpers.ts"

const broker = async (...args: Array<string>) => {
  const result = await run("bash", ["scripts/broker.sh", ...args], {}, 180_000)
  expect(result.code, result.stderr).toBe(0)
}

/** The offsets a `receive --print` printed, one line each. */
const printedOffsets = (stdout: string) =>
  stdout.split("\n").flatMap((line) => (/^\d+\t/.test(line) ? [Number(line.split("\t")[0])] : []))

describe("the broker restarted under a running receive", () => {
  it("receive waits, resumes after the last message processed, and ends at the end: every message exactly once", () =>
    withStream("restart-receive", async (stream) => {
      const total = 1_000_000
      const half = ["--stream", stream, "--count", String(total / 2)]
      expect((await cli("bun", "send", half)).code).toBe(0)
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "restart-"))
      try {
        // It waits for the second half, sent once the broker is back: the restart lands under it
        // whatever its speed. Every message is printed to a file: the record of what was processed.
        const consumer = start("node", "receive", [
          "--stream", stream, "--name", "restart", "--no-marker", "--count", String(total), "--tracking", "none", "--print"
        ], { stdoutFile: path.join(dir, "out") })
        await consumer.waitFor("First message received.")
        await broker("restart")
        expect((await cli("bun", "send", half)).code).toBe(0)
        const exit = await consumer.exitWithin(120_000)
        expect(exit.code, exit.stderr).toBe(0)
        expect(exit.stderr).toContain("was lost")
        expect(exit.stderr).toMatch(/info: connected to .* after \d+ attempt/)
        const offsets = printedOffsets(exit.stdout)
        expect(offsets.length).toBe(total)
        expect(new Set(offsets).size).toBe(total)
        expect(Math.min(...offsets.slice(0, 1000))).toBe(0)
        expect(offsets.at(-1)).toBe(total - 1)
        expect(exit.stderr).toContain(`Done consuming, first offset 0, last offset ${total - 1}.`)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }), 240_000)
})

describe("the broker restarted under a running named send", () => {
  it("send finishes; the stream holds every message exactly once", () =>
    withStream("restart-send", async (stream) => {
      const total = 1_000_000
      const exit = await namedSendAcross(stream, total, { fault: () => broker("restart") })
      expect(exit.stderr).toContain("publishing again")
      await expectEachMessageOnce(stream, total)
    }), 240_000)
})

describe("the broker down under a running receive", () => {
  it("SIGTERM ends it within 15 s: the summary, and one line saying the final store was not confirmed (exit 1)", () =>
    withStream("down-sigterm", async (stream) => {
      expect((await cli("bun", "send", ["--stream", stream, "--count", "1000"])).code).toBe(0)
      const consumer = start("node", "receive", ["--stream", stream, "--name", "down", "--no-marker"])
      await consumer.waitFor("First message received.")
      try {
        await broker("down")
        await new Promise((r) => setTimeout(r, 3000))
        const signalled = Date.now()
        consumer.child.kill("SIGTERM")
        const exit = await consumer.exitWithin(120_000)
        expect(Date.now() - signalled).toBeLessThan(15_000)
        expect(exit.stdout).toContain("Done consuming, first offset 0, last offset 999.")
        expect(exit.stderr).toContain("error: the final offset 999 was not confirmed stored")
        expect(exit.code).toBe(1)
      } finally {
        await broker("up")
      }
    }), 240_000)
})
