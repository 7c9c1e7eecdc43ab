// Processes killed mid-way and connections cut, on a real RabbitMQ: nothing lost, nothing duplicated.
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { cli, expectEachMessageOnce, parseSummary, port, run, type Running, start, waitForMessages, withStream } from "./helpers.ts"

/** Closes every client connection of the test broker. */
const cutConnections = async () => {
  const cut = await run("bash", ["scripts/broker.sh", "cut"])
  expect(cut.code, cut.stderr).toBe(0)
}

describe("send killed with SIGKILL", () => {
  it("runs again with the same producer name: every message exactly once", () =>
    withStream("sigkill-send", async (stream) => {
      const total = 300_000
      const args = ["--stream", stream, "--count", String(total), "--producer", "batch-1"]
      const first = start("bun", "send", args)
      await first.waitFor("Publishing")
      await waitForMessages(stream)
      first.child.kill("SIGKILL")
      await first.exit

      const again = await cli("bun", "send", args)
      expect(again.code).toBe(0)
      const skipped = Number(/Skipped (\d+) messages/.exec(again.stdout)?.[1] ?? "0")
      expect(skipped).toBeGreaterThan(0)
      expect(skipped).toBeLessThan(total)
      expect(again.stdout).toContain("Messages confirmed: true.")
      await expectEachMessageOnce(stream, total)
    }))
})

describe("connections cut under a running receive", () => {
  it("receive reconnects and resumes after the last message processed: every message exactly once", () =>
    withStream("cut", async (stream) => {
      const total = 1_000_000
      expect((await cli("bun", "send", ["--stream", stream, "--count", String(total)])).code).toBe(0)
      // Its stdout is not read until the connections are cut: the consumer waits for its reader with
      // most of the stream still to come (it reads 10^6 in about a second, as long as the cut takes).
      const consumer = start("bun", "receive", [
        "--stream", stream, "--name", "cut", "--no-marker", "--until-end", "--tracking", "none", "--print"
      ], { pausedStdout: true })
      await consumer.waitFor("First message received.")
      await cutConnections()
      consumer.readStdout()
      const exit = await consumer.exitWithin(120_000)
      expect(exit.code, exit.stderr).toBe(0)
      expect(exit.stderr).toContain("the connection to the broker was lost")
      // Offsets 0 .. total-1, each printed once: nothing lost, nothing processed twice.
      const offsets = exit.stdout.split("\n").flatMap((line) => (/^\d+\t/.test(line) ? [line.slice(0, line.indexOf("\t"))] : []))
      expect(offsets).toHaveLength(total)
      expect(new Set(offsets).size).toBe(total)
      expect(parseSummary(exit.stderr)).toEqual({ first: 0n, last: BigInt(total - 1), messages: total })
    }))
})

describe("connections cut under a running send", () => {
  it("a named producer reconnects and sends what was not confirmed: every message exactly once", () =>
    withStream("cut-send", async (stream) => {
      const total = 1_000_000
      const producer = start("bun", "send", ["--stream", stream, "--count", String(total), "--producer", "p"])
      await producer.waitFor("Publishing")
      await waitForMessages(stream)
      await cutConnections()
      const exit = await producer.exit
      expect(exit.code, exit.stderr).toBe(0)
      expect(exit.stdout).toContain("Messages confirmed: true.")
      expect(exit.stderr).toContain("the connection to the broker was lost")
      await expectEachMessageOnce(stream, total)
    }))
})

describe("receive killed with SIGKILL at random points", () => {
  it("restarted each time: every message is processed, duplicates only within the tracking window", () =>
    withStream("sigkill-receive", async (stream) => {
      const total = 200_000
      const storeEvery = 1000
      const kills = 3
      // Each run prints to a file (Node writes files synchronously): a printed line is a processed
      // message, even at SIGKILL. (A pipe would not do: Node buffers what the pipe cannot take.)
      const args = ["--stream", stream, "--name", "k", "--no-marker", "--print", "--store-every", String(storeEvery)]
      const printed = (stdout: string) =>
        stdout.split("\n").flatMap((line) => (/^\d+\t/.test(line) ? [Number(line.split("\t")[0])] : []))
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sigkill-"))
      try {
        expect((await cli("bun", "send", ["--stream", stream, "--count", String(total)])).code).toBe(0)
        const seen = new Map<number, number>()
        const count = (offsets: ReadonlyArray<number>) => offsets.forEach((o) => seen.set(o, (seen.get(o) ?? 0) + 1))
        for (let k = 0; k < kills; k++) {
          const consumer = start("node", "receive", args, { stdoutFile: path.join(dir, `run-${k}.out`) })
          // Let it process a random share of the rest, then kill it without warning.
          const target = seen.size + Math.floor(Math.random() * (total / kills / 2)) + 1000
          while (printed(consumer.output()).length + seen.size < target && consumer.child.exitCode === null) {
            await new Promise((r) => setTimeout(r, 5))
          }
          consumer.child.kill("SIGKILL")
          count(printed((await consumer.exit).stdout))
        }
        const last = await cli("node", "receive", [...args, "--until-end"])
        expect(last.code, last.stderr).toBe(0)
        count(printed(last.stdout))

        // The union is every message ...
        expect(seen.size).toBe(total)
        const offsets = [...seen.keys()]
        expect(offsets.reduce((a, b) => Math.min(a, b))).toBe(0)
        expect(offsets.reduce((a, b) => Math.max(a, b))).toBe(total - 1)
        // ... and what was processed twice is within the tracking window of each kill (N messages,
        // plus the rest of the delivered chunk in which the N-th fell).
        const duplicates = [...seen.values()].reduce((sum, n) => sum + n - 1, 0)
        expect(duplicates).toBeLessThanOrEqual(kills * (storeEvery + 5000))
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }))
})

/**
 * A proxy in front of the test broker for the client's locator connections (its publishers and
 * consumers connect to the broker's advertised address, directly). It can end every proxied
 * connection, or end the locator once the broker answered `n` more metadata queries on it.
 */
const locatorProxy = async () => {
  const pairs = new Set<readonly [net.Socket, net.Socket]>()
  const cut = { afterMetadata: 0 }
  const server = net.createServer((client) => {
    const broker = net.connect(port, "localhost")
    const pair = [client, broker] as const
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      broker.destroy()
    }
    client.pipe(broker)
    // The broker's frames, read as they pass: size (4 bytes), then the key (2 bytes).
    let pending = Buffer.alloc(0)
    broker.on("data", (data: Buffer) => {
      client.write(data)
      pending = Buffer.concat([pending, data])
      while (pending.length >= 6 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const key = pending.readUInt16BE(4)
        pending = pending.subarray(4 + pending.readUInt32BE(0))
        if (key === 0x800f && cut.afterMetadata > 0 && --cut.afterMetadata === 0) setImmediate(end)
      }
    })
    for (const socket of pair) socket.on("error", end).on("close", end)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    uri: `rabbitmq-stream://guest:guest@localhost:${(server.address() as net.AddressInfo).port}/%2f`,
    endAll: () => [...pairs].forEach(([client]) => client.destroy()),
    endAfterMetadata: (n: number) => void (cut.afterMetadata = n),
    close: () => {
      server.close()
      for (const [client, broker] of pairs) client.destroy(), broker.destroy()
    }
  }
}

describe("a client replaced while a single active subscription is being made on it", () => {
  it("that subscription is ended: it does not stay the group's active member, the consumer goes on", () =>
    withStream("replaced-while-subscribing", async (stream) => {
      // The locator is ended once, then again right after it answered the new client's metadata
      // query for the subscription: the client is replaced while its subscription completes on its
      // own connection. Left open, that subscription stays the group's active member (its messages
      // go nowhere) and the next client's subscription waits behind it forever.
      const proxy = await locatorProxy()
      const lines = (out: string) => out.split("\n").filter((line) => /^\d+\t/.test(line)).length
      const waitForLines = async (consumer: Running, n: number) => {
        const deadline = Date.now() + 30_000
        while (lines(consumer.output()) < n && Date.now() < deadline && consumer.child.exitCode === null) {
          await new Promise((r) => setTimeout(r, 50))
        }
        return lines(consumer.output())
      }
      try {
        expect((await cli("node", "send", ["--stream", stream, "--count", "1000"])).code).toBe(0)
        const consumer = start("node", "receive", [
          "--uri", proxy.uri, "--stream", stream, "--name", "g", "--single-active", "--no-marker", "--print"
        ])
        expect(await waitForLines(consumer, 1000)).toBe(1000)
        // The new client asks for the stream's metadata twice: whether it exists, then where to subscribe.
        proxy.endAfterMetadata(2)
        proxy.endAll()
        await consumer.waitFor("connected to", 30_000)
        expect((await cli("node", "send", ["--stream", stream, "--count", "1000"])).code).toBe(0)
        const got = await waitForLines(consumer, 2000)
        consumer.interrupt()
        const exit = await consumer.exitWithin(30_000)
        expect(got, exit.stderr).toBe(2000)
        expect(exit.code, exit.stderr).toBe(0)
        // Both cuts happened: the client was replaced twice.
        expect(exit.stderr.match(/was lost \(/g)?.length, exit.stderr).toBe(2)
      } finally {
        proxy.close()
      }
    }), 120_000)
})
