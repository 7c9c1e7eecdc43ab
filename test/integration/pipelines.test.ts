// The CLIs in shell pipelines: data on stdout, status on stderr; `send --from` publishes lines as
// they are (any bytes but a newline), `receive --json` gives them back without loss; `offset --set`
// moves a consumer, `offset --json` reports it.
import { describe, expect, it } from "@effect/vitest"
import { Buffer } from "node:buffer"
import { cli, piped, run, runtimes, start, withStream, withSuperStream } from "./helpers.ts"


const jsonLines = (stdout: string) =>
  stdout.trim().split("\n").map((line) => JSON.parse(line) as { offset: string; body: string; encoding?: string })

describe("send --from - | receive --json", () => {
  for (const runtime of ["node", "bun", "deno"] as const) {
    it(`${runtime}: arbitrary lines round-trip, non-UTF-8 ones as base64; stdout holds only data`, () =>
      withStream(`pipe-${runtime}`, async (stream) => {
        const lines = [Buffer.from("1"), Buffer.from("héllo wörld"), Buffer.from([0xff, 0xfe, 0x00, 0x41]), Buffer.from(""), Buffer.from("tab\there")]
        const input = Buffer.concat(lines.flatMap((line) => [line, Buffer.from("\n")]))
        const sent = await piped(runtime, "send", ["--stream", stream, "--from", "-"], input)
        expect(sent.code, sent.stderr).toBe(0)
        expect(sent.stdout).toContain(`Published ${lines.length} messages.`)

        const received = await cli(runtime, "receive", ["--stream", stream, "--name", "json", "--no-marker", "--until-end", "--json"])
        expect(received.code, received.stderr).toBe(0)
        expect(received.stderr).toContain(`Consumed ${lines.length} messages.`)
        const got = jsonLines(received.stdout)
        expect(got.map((m) => m.offset)).toEqual(lines.map((_, i) => String(i)))
        expect(got.map((m) => Buffer.from(m.body, m.encoding === "base64" ? "base64" : "utf8"))).toEqual(lines)
        expect(got[2]!.encoding).toBe("base64")
        expect(got[1]).toEqual({ offset: "1", body: "héllo wörld" })
      }))
  }

  it("seq 1 5000 | send --from -: publishes 1 ... 5000 and nothing else (no marker)", () =>
    withStream("pipe-seq", async (stream) => {
      const input = Buffer.from(Array.from({ length: 5000 }, (_, i) => `${i + 1}\n`).join(""))
      expect((await piped("bun", "send", ["--stream", stream, "--from", "-"], input)).code).toBe(0)
      const received = await cli("bun", "receive", ["--stream", stream, "--name", "seq", "--no-marker", "--until-end", "--print"])
      expect(received.stdout.trim().split("\n").map((line) => line.split("\t")[1])).toEqual(
        Array.from({ length: 5000 }, (_, i) => `${i + 1}`)
      )
      // With --print, stdout is data: every line is OFFSET<tab>BODY; the status lines are on stderr.
      expect(received.stdout).not.toContain("consuming")
      expect(received.stderr).toContain("Started consuming...")
    }))
})

describe("receive --print into a pipe, many lines fast", () => {
  it.each(["node", "bun", "deno"] as const)("%s: every line arrives (the output waits for the reader, and the exit for the output)", (runtime) =>
    withSuperStream(`many-lines-${runtime}`, async (superStream) => {
      // Three partitions consumed at once write lines faster than a pipe takes them.
      const total = 300_000
      expect((await cli("node", "send", ["--super-stream", superStream, "--count", String(total)])).code).toBe(0)
      // The program itself, its stdout a pipe from this (Node) process: a socket, to which the
      // program's writes can still be queued when it exits.
      const counted = await start(runtime, "receive", ["--super-stream", superStream, "--name", "c", "--print"]).exitWithin(60_000)
      expect(counted.code, counted.stderr).toBe(0)
      // Each partition ends with the marker.
      expect(counted.stdout.split("\n").filter((line) => line !== "").length).toBe(total + 2)
    }), 120_000)
})

describe("receive --print | head -n 2", () => {
  it.each(["node", "bun", "deno"] as const)("%s: the reader goes away: one line, the offset stored, exit 0, no stack trace", (runtime) =>
    withStream(`head-${runtime}`, async (stream) => {
      expect((await cli("bun", "send", ["--stream", stream, "--count", "200000"])).code).toBe(0)
      const [command, argv] = runtimes[runtime]("receive", ["--stream", stream, "--name", "h", "--print"])
      const line = [command, ...argv].map((a) => `'${a}'`).join(" ")
      const piped = await run("bash", ["-c", `${line} 2>receive.err | head -n 2; echo "exit \${PIPESTATUS[0]}"; cat receive.err; rm -f receive.err`])
      expect(piped.stdout).toMatch(/^0\thello 0\n1\thello 1\nexit 0\n/)
      expect(piped.stdout).toContain("stdout was closed by its reader; stopping")
      expect(piped.stdout).not.toMatch(/EPIPE|    at /)
      const offset = await cli("bun", "offset", ["--stream", stream, "--name", "h", "--json"])
      expect(JSON.parse(offset.stdout).storedOffset).not.toBeNull()
    }), 120_000)
})

describe("offset --set and --json", () => {
  it("moves a consumer back and forth explicitly; the next receive resumes after it", () =>
    withStream("set", async (stream) => {
      expect((await cli("bun", "send", ["--stream", stream, "--count", "10"])).code).toBe(0)
      const report = async () => {
        const r = await cli("bun", "offset", ["--stream", stream, "--name", "s", "--json"])
        expect(r.code, r.stderr).toBe(0)
        return JSON.parse(r.stdout) as Record<string, string | null>
      }
      expect(await report()).toEqual({ stream, consumer: "s", storedOffset: null, firstOffset: "0", lastOffset: "9", lag: "10" })

      const set = await cli("bun", "offset", ["--stream", stream, "--name", "s", "--set", "6", "--json"])
      expect(JSON.parse(set.stdout).storedOffset).toBe("6")
      const resumed = await cli("bun", "receive", ["--stream", stream, "--name", "s"])
      expect(resumed.stdout).toContain("Done consuming, first offset 7, last offset 9.")

      // Back to 2 (the workflows never move back; here it is asked for), then to the end.
      await cli("bun", "offset", ["--stream", stream, "--name", "s", "--set", "2"])
      expect((await report()).storedOffset).toBe("2")
      const again = await cli("bun", "offset", ["--stream", stream, "--name", "s", "--set", "last"])
      expect(again.stdout).toContain("stored offset: ")
      const stored = (await report()).storedOffset
      expect(Number(stored)).toBeGreaterThanOrEqual(9)
    }))

  it("--set first on a stream that starts at 0 says what to do instead (2); a bad value is a usage error (2)", () =>
    withStream("set-first", async (stream) => {
      expect((await cli("bun", "send", ["--stream", stream, "--count", "3"])).code).toBe(0)
      const first = await cli("bun", "offset", ["--stream", stream, "--name", "s", "--set", "first"])
      expect(first.code).toBe(2)
      expect(first.stderr).toContain("--ignore-stored --offset first")
      const bad = await cli("bun", "offset", ["--stream", stream, "--name", "s", "--set", "yesterday"])
      expect(bad.code).toBe(2)
      expect(bad.stderr.trim()).toBe('error: --set must be first, last or an offset, got "yesterday"')
    }))
})
