// The send/receive CLIs end to end, as a user runs them, on Node, Bun and Deno, against a real broker.
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cli, type Run, run, type Runtime, runtimes, uniqueStream, withStream } from "./helpers.ts"

const sendOk = async (runtime: Runtime, stream: string) => {
  const r = await cli(runtime, "send", ["--stream", stream])
  expect(r.stderr).toBe("")
  expect(r.stdout.trim().split("\n")).toEqual(["Publishing 100 messages...", "Messages confirmed: true."])
  expect(r.code).toBe(0)
}

const receiveOk = async (runtime: Runtime, stream: string) => {
  const r = await cli(runtime, "receive", ["--stream", stream, "--name", "cli"])
  expect(r.stderr).toBe("")
  expect(r.code).toBe(0)
  const lines = r.stdout.trim().split("\n")
  expect(lines.slice(0, 2)).toEqual(["Started consuming...", "First message received."])
  expect(lines[3]).toBe("Consumed 100 messages.")
  const match = /^Done consuming, first offset (\d+), last offset (\d+)\.$/.exec(lines[2] ?? "")
  expect(match, lines[2]).not.toBeNull()
  return { first: BigInt(match![1]!), last: BigInt(match![2]!) }
}

describe("send and receive CLIs", () => {
  for (const runtime of Object.keys(runtimes) as Array<Runtime>) {
    it(`${runtime}: send, receive, send, receive resumes where the first receive stopped`, () =>
      withStream(runtime, async (stream) => {
        await sendOk(runtime, stream)
        const first = await receiveOk(runtime, stream)
        await sendOk(runtime, stream)
        const second = await receiveOk(runtime, stream)
        expect(first.first).toBe(0n)
        expect(second.first).toBeGreaterThan(first.last)
      }))
  }

  it("mixed: Bun sends, Deno receives, Node sends, Bun receives the next batch", () =>
    withStream("mixed", async (stream) => {
      await sendOk("bun", stream)
      const first = await receiveOk("deno", stream)
      await sendOk("node", stream)
      const second = await receiveOk("bun", stream)
      expect(second.first).toBeGreaterThan(first.last)
    }))
})

describe("bad input: one line, an exit code, no stack trace", () => {
  const expectOneLine = (r: Run, code: number, text: string) => {
    expect(r.stderr.trim().split("\n")).toHaveLength(1)
    expect(r.stderr).toContain(text)
    expect(r.code).toBe(code)
  }

  it("a non-positive or non-numeric --count is a usage error (2)", async () => {
    expectOneLine(await cli("bun", "send", ["--count", "0"]), 2, "--count must be a positive integer")
    expectOneLine(await cli("bun", "send", ["--count", "ten"]), 2, "--count must be a positive integer")
  })

  it("an invalid stream name, offset, strategy or duration is a usage error (2)", async () => {
    expectOneLine(await cli("bun", "send", ["--stream", "has space"]), 2, "invalid stream name")
    expectOneLine(await cli("bun", "receive", ["--offset", "yesterday"]), 2, "--offset must be first, last, next")
    expectOneLine(await cli("bun", "receive", ["--tracking", "sometimes"]), 2, "--tracking must be manual, auto or none")
    expectOneLine(await cli("bun", "receive", ["--idle-timeout", "soon"]), 2, "--idle-timeout must be a duration")
  })

  it("an unknown flag is a usage error (2)", async () => {
    expectOneLine(await cli("bun", "receive", ["--nope"]), 2, "unknown flag --nope")
    // Another command's flag is unknown here too (not "needs a value"), with its value or without.
    expectOneLine(await cli("bun", "receive", ["--initial-cluster-size", "3"]), 2, "unknown flag --initial-cluster-size")
    expectOneLine(await cli("bun", "send", ["--stream"]), 2, "--stream needs a value")
  })

  it("a malformed URI is a usage error (2) and never shows the password", async () => {
    const r = await cli("bun", "send", ["--uri", "amqp://user:topsecret@localhost:5552/"])
    expectOneLine(r, 2, "unsupported URI scheme")
    expect(r.stderr).not.toContain("topsecret")
  })

  it("receive on a missing stream says so (1)", async () => {
    const stream = uniqueStream("missing")
    expectOneLine(await cli("bun", "receive", ["--stream", stream]), 1, `stream "${stream}" does not exist`)
  })

  it("nothing listening on the port, --retry-for 0s: fails at once (1) without the password", async () => {
    const r = await cli("bun", "send", ["--uri", "rabbitmq-stream://guest:topsecret@localhost:1/%2f", "--retry-for", "0s"])
    expectOneLine(r, 1, "cannot connect to rabbitmq-stream://guest@localhost:1/%2F")
    expect(r.stderr).not.toContain("topsecret")
  })

  it("nothing listening yet: a warning at once, retries for --retry-for, then one error line (1)", async () => {
    const started = Date.now()
    const r = await cli("node", "send", ["--uri", "rabbitmq-stream://guest:topsecret@localhost:1/%2f", "--retry-for", "3s"])
    expect(Date.now() - started).toBeGreaterThan(3000)
    const lines = r.stderr.trim().split("\n")
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^warning: cannot connect to .*localhost:1.*; retrying$/)
    expect(lines[1]).toMatch(/^error: .*cannot connect to .*\(gave up after \d+ attempts\)$/)
    expect(r.code).toBe(1)
    expect(r.stderr).not.toContain("topsecret")
  })

  it("wrong credentials: one line naming the problem (1), on every runtime, never the password", async () => {
    for (const runtime of ["node", "bun", "deno"] as const) {
      const r = await cli(runtime, "send", ["--uri", "rabbitmq-stream://guest:wrong-secret@localhost:5552/%2f"])
      expectOneLine(r, 1, "authentication failed: check the username and password")
      expect(r.stderr).not.toContain("wrong-secret")
    }
  })

  it("an unknown vhost: one line (1), the client's crash contained", async () => {
    const r = await cli("bun", "receive", ["--uri", "rabbitmq-stream://guest:guest@localhost:5552/no-such-vhost"])
    expectOneLine(r, 1, "the virtual host does not exist or the user may not use it")
  })

  it("every flag is checked before anything is printed or connected: one line, exit 2", async () => {
    const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>, string]> = [
      ["receive", ["--tracking", "auto", "--store-interval", "0s"], "--store-interval must be longer than 0"],
      ["receive", ["--tracking", "auto", "--store-interval", "0ms"], "--store-interval must be longer than 0"],
      ["receive", ["--idle-timeout", "0s"], "--idle-timeout must be longer than 0"],
      ["receive", ["--store-interval", "5s"], "--store-interval is for --tracking auto, not manual"],
      ["receive", ["--tracking", "none", "--store-every", "5"], "--store-every is for --tracking manual or auto"],
      ["receive", ["--name", "n".repeat(256)], "the consumer name must be 1 to 255 bytes long, got 256 bytes"],
      ["receive", ["--stream", "has space"], "invalid stream name"],
      ["send", ["--max-age", "banana"], "max-age must be a number and a unit"],
      ["send", ["--max-age", "7 days"], "max-age must be a number and a unit"],
      ["send", ["--producer", ""], "the producer name must be 1 to 255 bytes long, got an empty one"],
      ["send", ["--initial-cluster-size", "0"], "--initial-cluster-size must be a positive integer"],
      ["offset", ["--name", "n".repeat(300)], "the consumer name must be 1 to 255 bytes long"]
    ]
    for (const [script, args, text] of cases) {
      const r = await cli("bun", script, args)
      expectOneLine(r, 2, text)
      expect(r.stdout, `${script} ${args.join(" ")}`).toBe("")
    }
  })

  it("an empty environment variable is no value; a bad one is named by its variable", async () => {
    const empty = await cli("bun", "send", ["--stream", uniqueStream("empty-env"), "--uri", "rabbitmq-stream://guest:guest@localhost:1/%2f", "--retry-for", "0s"], { MESSAGE_COUNT: "" })
    expect(empty.stdout).toContain("Publishing 100 messages...")
    expectOneLine(await cli("bun", "send", [], { MESSAGE_COUNT: "abc" }), 2, 'MESSAGE_COUNT must be a positive integer, got "abc"')
    expectOneLine(await cli("bun", "send", ["--count", "x"], { MESSAGE_COUNT: "5" }), 2, '--count must be a positive integer, got "x"')
    const one = await cli("bun", "send", ["--uri", "rabbitmq-stream://guest:guest@localhost:1/%2f", "--retry-for", "0s", "--count", "1"])
    expect(one.stdout).toContain("Publishing 1 message...")
  })

  it("--offset-store file: a directory that cannot be made is one line (1); offset never creates one (2)", async () => {
    expectOneLine(await cli("bun", "receive", ["--offset-store", "file:/proc/nope", "--stream", uniqueStream("x")]), 1, "cannot use --offset-store file:/proc/nope")
    const dir = path.join(os.tmpdir(), `never-made-${process.pid}`)
    expectOneLine(await cli("bun", "offset", ["--offset-store", `file:${dir}`]), 2, `the directory ${dir} does not exist`)
    expect(fs.existsSync(dir)).toBe(false)
  })

  it("the benchmark refuses an unknown flag (a typo would otherwise run the full default)", async () => {
    const r = await run("node", ["scripts/run.mjs", "bench/bench.ts", "--size", "1000"])
    expectOneLine(r, 2, "unknown flag --size")
  })

  it("--help prints the flags and the runtime that runs them, and exits 0", async () => {
    for (const [runtime, name] of [["node", "Node"], ["bun", "Bun"], ["deno", "Deno"]] as const) {
      const r = await cli(runtime, "receive", ["--help"])
      expect(r.code).toBe(0)
      expect(r.stdout).toContain(`effect-stream-offsets on ${name}`)
      expect(r.stdout).toContain("--name")
      expect(r.stdout).toContain("RABBITMQ_STREAM_URI")
    }
  })
})
