// A 3-node RabbitMQ cluster on this machine (`broker.sh cluster up`: streams on localhost:5561-5563)
// and a URI that names all three: the node of the first endpoint (the locator, and the stream's
// leader, which is placed on the node that declared it) stops for real under a running receive
// and under a running named send; both finish, every message exactly once; the node rejoins.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { cli, expectEachMessageOnce, run, start, waitForMessages, withStream } from "./helpers.ts"

const uri = "rabbitmq-stream://guest:guest@localhost:5561,localhost:5562,localhost:5563/%2f"
const onCluster = ["--uri", uri]

/** broker.sh cluster ...; each step is logged with its time, so a slow one shows in the test's output. */
const cluster = async (...args: Array<string>) => {
  const t0 = Date.now()
  const result = await run("bash", ["scripts/broker.sh", "cluster", ...args], {}, 250_000)
  console.error(`cluster ${args.join(" ")}: exit ${result.code} in ${Date.now() - t0} ms\n${result.stderr.trim()}`)
  expect(result.code, result.stderr).toBe(0)
}

beforeAll(() => cluster("up"), 300_000)
afterAll(() => cluster("down"), 300_000)

/** Runs `f` with node 1 stopped part-way (by `stop`), and always starts node 1 again after it. */
const withNodeOneBack = async (f: () => Promise<void>) => {
  try {
    await f()
  } finally {
    await cluster("start-node", "1")
  }
}

describe("a cluster node lost under a running receive", () => {
  it("receive moves to another node, resumes after the last message processed: every message exactly once", () =>
    withStream("cluster-receive", async (stream) => {
      const total = 500_000
      const sent = await cli("bun", "send", [...onCluster, "--stream", stream, "--count", String(total), "--initial-cluster-size", "3"])
      expect(sent.code, sent.stderr).toBe(0)
      await withNodeOneBack(async () => {
        // Its stdout is not read until the node is gone: the consumer waits for its reader with
        // most of the stream still to come (else a fast run could finish before the node stops).
        const consumer = start("node", "receive", [
          ...onCluster, "--stream", stream, "--name", "c", "--no-marker", "--until-end", "--tracking", "none", "--print"
        ], { pausedStdout: true })
        await consumer.waitFor("First message received.")
        await cluster("stop-node", "1")
        consumer.readStdout()
        const exit = await consumer.exitWithin(120_000)
        expect(exit.code, exit.stderr).toBe(0)
        expect(exit.stderr).toContain("was lost")
        const offsets = exit.stdout.split("\n").flatMap((line) => (/^\d+\t/.test(line) ? [Number(line.split("\t")[0])] : []))
        expect(offsets.length).toBe(total)
        expect(new Set(offsets).size).toBe(total)
        expect(exit.stderr).toContain(`Done consuming, first offset 0, last offset ${total - 1}.`)
      })
    }, 5562), 480_000)
})

describe("a cluster node lost under a running named send", () => {
  it("send moves to the new leader and finishes: the stream holds every message exactly once", () =>
    withStream("cluster-send", async (stream) => {
      const total = 1_000_000
      await withNodeOneBack(async () => {
        // The messages come on stdin: half before the node stops, half after, so that it stops
        // under a running send whatever the speed of the machine.
        const producer = start("node", "send", [
          ...onCluster, "--stream", stream, "--from", "-", "--producer", "p", "--initial-cluster-size", "3"
        ], { stdin: true })
        const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `message ${from + i}\n`).join("")
        await producer.stdin.write(lines(0, total / 2))
        await waitForMessages(stream, 5562)
        await cluster("stop-node", "1")
        await producer.stdin.write(lines(total / 2, total))
        producer.stdin.end()
        const exit = await producer.exitWithin(120_000)
        expect(exit.code, exit.stderr).toBe(0)
        expect(exit.stdout).toContain(`Published ${total} messages.`)
        expect(exit.stdout).toContain("Messages confirmed: true.")
        expect(exit.stderr).toContain("was lost")
      })
      // Node 1 is back: the check reads through all three endpoints.
      await expectEachMessageOnce(stream, total, onCluster)
    }, 5562), 480_000)
})
