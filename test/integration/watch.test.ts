// `offset` for several consumers and over time, on the real broker: repeated --name, --all (the
// names come from the management API: the stream protocol cannot list them), --watch in a pipe
// (one JSON object per refresh; the lag follows the stored offsets; SIGTERM ends it, exit 0) and in
// a real terminal (tmux: one table redrawn in place; Ctrl-C ends it, exit 0), and bad input.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { cli, deleteStream, root, start, uniqueStream } from "./helpers.ts"

const stream = uniqueStream("watch")
const set = async (name: string, offset: string) => {
  const done = await cli("node", "offset", ["--stream", stream, "--name", name, "--set", offset])
  expect(done.code, done.stderr).toBe(0)
}

beforeAll(async () => {
  const sent = await cli("node", "send", ["--stream", stream, "--count", "1000"])
  expect(sent.code, sent.stderr).toBe(0)
  await set("billing", "499")
  await set("audit", "last")
}, 120_000)
afterAll(() => deleteStream(stream))

describe("offset for several consumers", () => {
  it("--name twice: a line each, named; --json: an object each", async () => {
    const shown = await cli("node", "offset", ["--stream", stream, "--name", "billing", "--name", "nobody"])
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout.trim().split("\n")).toEqual([
      `${stream} billing: stored offset 499, first offset 0, last offset 999, lag 500 offsets`,
      `${stream} nobody: stored offset none, first offset 0, last offset 999, lag 1000 offsets`
    ])
    const json = await cli("node", "offset", ["--stream", stream, "--name", "billing", "--name", "audit", "--json"])
    expect(json.stdout.trim().split("\n").map((line) => JSON.parse(line).storedOffset)).toEqual(["499", "999"])
  }, 60_000)

  it("--all: every name with an offset on the stream, from the management API", async () => {
    const all = await cli("node", "offset", ["--stream", stream, "--all", "--json"])
    expect(all.code, all.stderr).toBe(0)
    expect(all.stdout.trim().split("\n").map((line) => JSON.parse(line).consumer)).toEqual(["audit", "billing"])
  }, 60_000)

  it("--all with no management API there: one line that says what to do instead, exit 1", async () => {
    const all = await cli("node", "offset", ["--stream", stream, "--all", "--management-url", "http://127.0.0.1:9"])
    expect(all.code).toBe(1)
    expect(all.stderr.trim().split("\n")).toHaveLength(1)
    expect(all.stderr).toMatch(/^error: --all asks the management API at http:\/\/127\.0\.0\.1:9 .*name the consumers with --name$/m)
  }, 60_000)

  it("bad input: one line, exit 2, before connecting", async () => {
    for (
      const [args, message] of [
        [["--watch", "--interval", "0s"], "--interval must be longer than 0"],
        [["--watch", "--interval", "abc"], "--interval must be a duration"],
        [["--watch", "--set", "5"], "--set and --watch"],
        [["--name", "a", "--name", "b", "--set", "5"], "--set takes one consumer"],
        [["--management-url", "http://localhost:15672"], "--management-url is for --all"]
      ] as const
    ) {
      const run = await cli("node", "offset", ["--uri", "rabbitmq-stream://guest:guest@localhost:1/%2f", "--stream", stream, ...args])
      expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(2)
      expect(run.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1)
      expect(run.stderr).toContain(message)
    }
  }, 120_000)
})

describe("offset --watch", () => {
  it("in a pipe: a JSON object per refresh; the lag follows the stored offset down to 0; SIGTERM ends it, exit 0", async () => {
    await set("follower", "99")
    const watching = start("node", "offset", ["--stream", stream, "--name", "follower", "--watch", "--interval", "200ms"])
    const lines = () => watching.output().trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    const until = async (done: () => boolean) => {
      const deadline = Date.now() + 30_000
      while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(done(), watching.output()).toBe(true)
    }
    await until(() => lines().length >= 1)
    await set("follower", "599")
    await until(() => lines().some((l) => l.consumers[0].lag === "400"))
    await set("follower", "last")
    await until(() => lines().some((l) => l.consumers[0].lag === "0"))
    watching.child.kill("SIGTERM")
    const exit = await watching.exitWithin(30_000)
    expect(exit.code, exit.stderr).toBe(0)
    const lags = lines().map((l) => Number(l.consumers[0].lag))
    expect(lags[0]).toBe(900)
    expect(lags.at(-1)).toBe(0)
    // Never back up: the stored offset only moved forward here.
    for (let i = 1; i < lags.length; i++) expect(lags[i]).toBeLessThanOrEqual(lags[i - 1]!)
    expect(lines().some((l) => l.consumers[0].offsetsPerSecond > 0)).toBe(true)
    expect(lines().every((l) => typeof l.time === "string" && l.consumers[0].consumer === "follower")).toBe(true)
  }, 90_000)

  // (Under bun run: npm itself dies of the SIGINT, and bash then skips the echo.)
  it("in a terminal: one table, redrawn in place (one header however many refreshes); Ctrl-C ends it, exit 0", async () => {
    const socket = `effect-stream-offsets-watch-${process.pid}`
    const tmux = (...args: Array<string>) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" })
    const screen = () => tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "w")
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 30_000
      while (!pattern.test(screen())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; the screen:\n${screen()}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    const env = [`PATH=${path.join(root, "node_modules/.bin")}:${process.env.PATH}`, "PS1=$ ", "NO_COLOR=1"]
    tmux("new-session", "-d", "-s", "w", "-x", "200", "-y", "40", "-c", root, "env", ...env, "bash", "--norc", "-i")
    try {
      tmux("send-keys", "-t", "w", "-l", `bun run offset --stream ${stream} --name billing --name audit --watch --interval 300ms; echo EXIT=$?`, ";", "send-keys", "-t", "w", "Enter")
      await waitFor(/billing\s+499\s+999\s+500/)
      await set("billing", "899")
      await waitFor(/billing\s+899\s+999\s+100/)
      const shown = screen()
      // Several refreshes, one table: the header once, each consumer once.
      expect(shown.match(/STREAM\s+CONSUMER\s+STORED/g), shown).toHaveLength(1)
      expect(shown.match(/^\S+\s+audit\s+999\s+999\s+0\b/gm), shown).toHaveLength(1)
      tmux("send-keys", "-t", "w", "C-c")
      await waitFor(/EXIT=\d+/)
      expect(screen()).toContain("EXIT=0")
    } finally {
      tmux("kill-server")
    }
  }, 90_000)
})
