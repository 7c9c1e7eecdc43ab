// Super streams on a real RabbitMQ: a named send killed and run again adds nothing; consumers of
// one name share the partitions, hand them over after the stored offsets, and between them
// process every message exactly once. Node, Bun and Deno each play a part.
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cli, run, type Runtime, start, waitForMessages, withSuperStream } from "./helpers.ts"

const partitionsOf = (superStream: string) => [0, 1, 2].map((i) => `${superStream}-${i}`)

/** The `--print` lines of a super stream receive: partition, offset, body. */
const printed = (text: string) =>
  text.split("\n").flatMap((line) => {
    const [partition, offset, ...body] = line.split("\t")
    return partition && offset && /^\d+$/.test(offset) ? [{ partition, offset: BigInt(offset), body: body.join("\t") }] : []
  })

/** Everything in the super stream, read once by a fresh consumer. */
const readAll = async (superStream: string) => {
  const all = await run("node", [
    "scripts/run.mjs", "src/main.ts", "receive", "--super-stream", superStream, "--name", `check-${Date.now()}`,
    "--no-marker", "--until-end", "--tracking", "none", "--print"
  ], {}, 120_000)
  expect(all.code, all.stderr).toBe(0)
  return printed(all.stdout)
}

describe("send to a super stream, killed with SIGKILL", () => {
  it("runs again with the same producer name: every partition gets messages, each message once; a third run adds nothing", () =>
    withSuperStream("super-send", async (superStream) => {
      const total = 300_000
      const args = ["--super-stream", superStream, "--partitions", "3", "--count", String(total), "--producer", "p"]
      const first = start("node", "send", args)
      await first.waitFor("Publishing")
      await waitForMessages(`${superStream}-0`)
      first.child.kill("SIGKILL")
      await first.exit

      const again = await cli("node", "send", args)
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout).toContain("Messages confirmed: true.")
      const skipped = Number(/Skipped (\d+) messages/.exec(again.stdout)?.[1] ?? "0")
      expect(skipped).toBeGreaterThan(0)

      const third = await cli("node", "send", args)
      expect(third.code, third.stderr).toBe(0)
      // Every message, and the marker once per partition, was already there.
      expect(third.stdout).toContain(`Skipped ${total + 2} messages already published by producer "p".`)
      for (const partition of partitionsOf(superStream)) expect(third.stdout).toContain(`Partition ${partition}: 0 messages sent.`)

      const messages = await readAll(superStream)
      expect(messages.length).toBe(total + 2)
      const bodies = messages.filter((m) => m.body !== "marker").map((m) => m.body)
      expect(new Set(bodies).size).toBe(total - 1)
      for (const partition of partitionsOf(superStream)) {
        const mine = messages.filter((m) => m.partition === partition)
        expect(mine.length).toBeGreaterThan(total / 5)
        expect(mine.at(-1)?.body).toBe("marker")
      }
    }), 240_000)
})

describe("single active consumers on a super stream", () => {
  it("two processes split the partitions; SIGTERM one, the other takes over after its stored offsets; a third run resumes; every message exactly once", () =>
    withSuperStream("super-sac", async (superStream) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "super-sac-"))
      const send = async (from: number, to: number) => {
        const lines = path.join(dir, `lines-${from}`)
        fs.writeFileSync(lines, Array.from({ length: to - from }, (_, i) => `m ${from + i}`).join("\n"))
        const sent = await cli("node", "send", ["--super-stream", superStream, "--from", lines])
        expect(sent.code, sent.stderr).toBe(0)
      }
      const group = (runtime: Runtime, who: string) =>
        start(runtime, "receive", ["--super-stream", superStream, "--name", "group", "--single-active", "--no-marker", "--print"], {
          stdoutFile: path.join(dir, who)
        })
      try {
        await send(0, 1)
        // A first (every partition), then B: the broker gives B partition 1 (1 mod 2), after A
        // stepped down from it.
        const a = group("bun", "a")
        await a.waitFor("First message received.")
        const b = group("deno", "b")
        await b.waitFor("Started consuming...")
        const deadline = Date.now() + 30_000
        // B is in the group once it has partition 1: the next message for it goes to B.
        while (printed(b.output()).length === 0 && Date.now() < deadline) {
          await send(Date.now(), Date.now() + 10)
          await new Promise((r) => setTimeout(r, 300))
        }
        await send(100_000, 200_000)
        await waitUntil(() => printed(a.output()).length + printed(b.output()).length >= 100_000, "A and B consume the first batch")
        expect(new Set(printed(b.output()).map((m) => m.partition))).toEqual(new Set([`${superStream}-1`]))

        // B stops: partition 1 goes back to A, from after what B stored.
        b.child.kill("SIGTERM")
        const bExit = await b.exitWithin(30_000)
        expect(bExit.code, bExit.stderr).toBe(0)
        await send(200_000, 300_000)
        await waitUntil(
          () => printed(a.output()).filter((m) => m.body.startsWith("m 2")).length >= 100_000,
          "A consumes the second batch, partition 1 included"
        )
        a.child.kill("SIGTERM")
        const aExit = await a.exitWithin(30_000)
        expect(aExit.code, aExit.stderr).toBe(0)

        // More while nobody runs; a third run (Node) resumes after each partition's stored offset.
        await send(300_000, 310_000)
        const c = await run("node", [
          "scripts/run.mjs", "src/main.ts", "receive", "--super-stream", superStream, "--name", "group", "--no-marker",
          "--until-end", "--print"
        ])
        expect(c.code, c.stderr).toBe(0)

        const all = [...printed(a.output()), ...printed(b.output()), ...printed(c.stdout)]
        const everything = await readAll(superStream)
        expect(all.length).toBe(everything.length)
        const key = (m: { partition: string; offset: bigint }) => `${m.partition}/${m.offset}`
        expect(new Set(all.map(key))).toEqual(new Set(everything.map(key)))
        expect(printed(c.stdout).length).toBeGreaterThanOrEqual(10_000)

        const offsets = await cli("node", "offset", ["--super-stream", superStream, "--name", "group"])
        expect(offsets.code, offsets.stderr).toBe(0)
        for (const partition of partitionsOf(superStream)) expect(offsets.stdout).toMatch(new RegExp(`^${partition}: stored offset \\d+, .*lag 0 offsets$`, "m"))
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }), 240_000)
})

const waitUntil = async (done: () => boolean, what: string, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
