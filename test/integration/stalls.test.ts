// Faults that close nothing, on RabbitMQ 4: the broker's VM frozen (SIGSTOP: connections stay open,
// nothing answers), and a disk alarm (the broker stops reading from connections that publish, and
// refuses new publishers). Signals still win, named producers wait them out, unnamed ones fail in
// one line, consumers are not affected by an alarm.
import { afterEach, describe, expect, it } from "@effect/vitest"
import { cli, expectEachMessageOnce, messageLines, namedSendAcross, parseSummary, run, type Runtime, start, waitForMessages, withStream } from "./helpers.ts"

const broker = async (...args: Array<string>) => {
  const result = await run("bash", ["scripts/broker.sh", ...args], {}, 180_000)
  expect(result.code, `broker.sh ${args.join(" ")}: ${result.stderr}`).toBe(0)
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// Whatever a test does, the broker is left thawed and without an alarm for the next one.
afterEach(async () => {
  await run("bash", ["scripts/broker.sh", "thaw"])
  await run("bash", ["scripts/broker.sh", "alarm", "off"])
}, 120_000)

describe("the broker frozen under a running receive", () => {
  for (const runtime of ["node", "bun", "deno"] as const satisfies ReadonlyArray<Runtime>) {
    it(`${runtime}: SIGINT stops it within the final store's bound: the summary, then one line saying the store was not confirmed (exit 1)`, () =>
      withStream(`frozen-receive-${runtime}`, async (stream) => {
        expect((await cli("bun", "send", ["--stream", stream, "--count", "1000"])).code).toBe(0)
        const consumer = start(runtime, "receive", ["--stream", stream, "--name", "frozen", "--no-marker"])
        await consumer.waitFor("First message received.")
        await sleep(1000)
        await broker("freeze")
        await sleep(1000)
        const signalled = Date.now()
        consumer.interrupt()
        const exit = await consumer.exitWithin(60_000)
        const took = Date.now() - signalled
        await broker("thaw")
        // The bound: the final store and its read-back (5 s); closes on a silent connection are
        // not waited for. (Before: 20 s, then the CLI's last-resort deadline, and no summary.)
        expect(took, exit.stderr).toBeLessThan(10_000)
        expect(exit.stderr).not.toContain("did not stop within")
        expect(exit.stdout).toContain("Done consuming, first offset 0, last offset 999.")
        expect(exit.stderr).toContain("error: the final offset 999 was not confirmed stored")
        expect(exit.code).toBe(1)
      }), 120_000)
  }

  it("a freeze longer than two heartbeats is taken as a lost connection: receive resumes after the thaw, each message once", () =>
    withStream("frozen-resume", async (stream) => {
      const total = 200_000
      expect((await cli("bun", "send", ["--stream", stream, "--count", String(total / 2)])).code).toBe(0)
      const consumer = start("node", "receive", ["--stream", stream, "--name", "patient", "--no-marker", "--count", String(total), "--print"])
      await consumer.waitFor("First message received.")
      await broker("freeze")
      await sleep(15_000)
      await broker("thaw")
      expect((await cli("bun", "send", ["--stream", stream, "--count", String(total / 2)])).code).toBe(0)
      const exit = await consumer.exitWithin(120_000)
      expect(exit.stderr).toContain("the broker stopped answering")
      expect(exit.code, exit.stderr).toBe(0)
      // The stream holds `total` messages; `total` distinct offsets processed is each of them once.
      // (Offsets are not dense: the broker's tracking chunks take offsets too.)
      const offsets = exit.stdout.split("\n").flatMap((line) => (/^\d+\t/.test(line) ? [line.split("\t")[0]] : []))
      expect(offsets).toHaveLength(total)
      expect(new Set(offsets).size).toBe(total)
      expect(parseSummary(exit.stderr)).toMatchObject({ first: 0n, messages: total })
    }), 180_000)
})

describe("the broker frozen under a running send", () => {
  it("a named send waits it out (the frozen connection is replaced, what was not confirmed is sent again): each message once", () =>
    withStream("frozen-named-send", async (stream) => {
      const total = 1_000_000
      const exit = await namedSendAcross(stream, total, {
        fault: () => broker("freeze"),
        meanwhile: () => sleep(30_000).then(() => broker("thaw"))
      })
      expect(exit.stderr).toMatch(/no confirm within 10s|the broker stopped answering/)
      await expectEachMessageOnce(stream, total)
    }), 240_000)

  for (const runtime of ["node", "bun", "deno"] as const satisfies ReadonlyArray<Runtime>) {
    it(`${runtime}: an unnamed send fails in one line that names it and says how much was confirmed (exit 1)`, () =>
      withStream(`frozen-unnamed-send-${runtime}`, async (stream) => {
        const producer = start(runtime, "send", ["--stream", stream, "--from", "-"], { stdin: true })
        await producer.stdin.write(messageLines(0, 100_000))
        await waitForMessages(stream)
        await broker("freeze")
        void producer.stdin.write(messageLines(100_000, 400_000))
        const exit = await producer.exitWithin(60_000)
        await broker("thaw")
        expect(exit.code).toBe(1)
        const errors = exit.stderr.split("\n").filter((l) => l.startsWith("error: "))
        expect(errors).toHaveLength(1)
        expect(errors[0]).toMatch(
          /(were not confirmed within 10s \(the broker is not answering|the broker stopped answering: nothing arrived for \d+ s).*; \d+ of the \d+ messages read were confirmed$/
        )
        expect(exit.stderr).not.toMatch(/\n\s+at /)
      }), 120_000)
  }
})

describe("a disk alarm", () => {
  it("a named send waits it out (said once) and resumes when it clears: each message once", () =>
    withStream("alarm-named-send", async (stream) => {
      const total = 600_000
      const exit = await namedSendAcross(stream, total, {
        fault: () => broker("alarm", "on"),
        meanwhile: () => sleep(30_000).then(() => broker("alarm", "off"))
      })
      expect(exit.stderr.match(/the broker is refusing publishers \(a resource alarm/g)).toHaveLength(1)
      await expectEachMessageOnce(stream, total)
    }), 240_000)

  it("a send that starts during one and outlasts --retry-for fails in one line naming the alarm (exit 1)", () =>
    withStream("alarm-refused-send", async (stream) => {
      expect((await cli("bun", "send", ["--stream", stream, "--count", "10"])).code).toBe(0)
      await broker("alarm", "on")
      const sent = await cli("node", "send", ["--stream", stream, "--count", "1000", "--retry-for", "10s"])
      expect(sent.code).toBe(1)
      expect(sent.stderr).toMatch(/^error: declare a publisher on ".*" failed: the broker is refusing publishers \(a resource alarm: disk or memory; code 17\)$/m)
      expect(sent.stderr).not.toMatch(/\n\s+at /)
    }), 180_000)

  it("consumers are not affected: receive reads the stream to its end during the alarm", () =>
    withStream("alarm-receive", async (stream) => {
      expect((await cli("bun", "send", ["--stream", stream, "--count", "100000"])).code).toBe(0)
      await broker("alarm", "on")
      const read = await cli("node", "receive", ["--stream", stream, "--name", "reader", "--no-marker", "--until-end"])
      expect(read.code, read.stderr).toBe(0)
      expect(parseSummary(read.stdout)).toEqual({ first: 0n, last: 99_999n, messages: 100_000 })
    }), 120_000)
})
