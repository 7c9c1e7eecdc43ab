// The CLIs as people run them: in a real terminal (tmux gives a pseudo-terminal; commands are
// typed into an interactive bash), where Ctrl-C signals the whole foreground process group and
// Deno may prompt. What is checked is what the screen shows.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cli, deleteStream, root, uniqueStream } from "./helpers.ts"

const socket = `effect-stream-offsets-test-${process.pid}`
const tmux = (...args: Array<string>) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" })
const shellPath = `${path.join(root, "node_modules/.bin")}:${process.env.PATH}`
let sessions = 0

/** An interactive bash in a fresh tmux session; `env` is in its environment (never typed). */
const terminal = (env: Record<string, string> = {}) => {
  const name = `t${++sessions}`
  const vars = Object.entries({ PATH: shellPath, PS1: "$ ", NO_COLOR: "1", ...env }).map(([k, v]) => `${k}=${v}`)
  tmux("new-session", "-d", "-s", name, "-x", "250", "-y", "50", "-c", root, "env", ...vars, "bash", "--norc", "-i")
  const screen = () => tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", name)
  return {
    screen,
    type: (line: string) => void tmux("send-keys", "-t", name, "-l", line, ";", "send-keys", "-t", name, "Enter"),
    ctrlC: () => void tmux("send-keys", "-t", name, "C-c"),
    waitFor: async (pattern: RegExp, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs
      while (!pattern.test(screen())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; the screen:\n${screen()}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      return screen()
    },
    close: () => void tmux("kill-session", "-t", name)
  }
}

const stream = uniqueStream("terminal")
beforeAll(async () => {
  const sent = await cli("bun", "send", ["--stream", stream, "--count", "1000"])
  expect(sent.code, sent.stderr).toBe(0)
})
afterAll(async () => {
  await deleteStream(stream)
  try {
    tmux("kill-server")
  } catch {
    // no session left
  }
})

const runners = {
  node: "npm run receive --",
  bun: "bun run receive",
  deno: "deno task receive"
}

describe("Ctrl-C in a terminal stops receive once, gracefully, under every runner", () => {
  for (const [runtime, command] of Object.entries(runners)) {
    it(`${runtime} (${command}): the summary, exit 0, three times out of three`, async () => {
      for (let attempt = 1; attempt <= 3; attempt++) {
        const term = terminal()
        try {
          term.type(`${command} --stream ${stream} --name ctrl-c-${runtime}-${attempt} --no-marker; echo EXIT=$?`)
          await term.waitFor(/First message received\./)
          term.ctrlC()
          const screen = await term.waitFor(/Consumed \d+ messages\.|EXIT=\d/, 20_000)
          const done = /Done consuming, first offset 0, last offset (\d+)\.\s+Consumed (\d+) messages\./.exec(screen)
          expect(done, screen).not.toBeNull()
          expect(Number(done![2])).toBe(Number(done![1]) + 1)
          // npm itself dies of the SIGINT (bash then skips the echo); the program exited 0.
          if (runtime !== "node") expect(await term.waitFor(/EXIT=\d+/)).toContain("EXIT=0")
          expect(screen).not.toMatch(/exited with code|error:/)
        } finally {
          term.close()
        }
      }
    }, 120_000)
  }
})

describe("Ctrl-C in a terminal stops the examples gracefully under bun run and deno task", () => {
  // The runner forwards its own copy of the Ctrl-C: without examples/run-main.ts that copy can kill
  // the example before its summary, depending on when it lands (checked: in two runs of these three
  // without it, one and then two of them failed; by hand, the caught-up case failed 3 of 3).
  const cases = [
    { command: "bun run example:batches", caughtUp: true, summary: /batch-sink: wrote 0 messages in 0 batches/ },
    { command: "deno task example:batches", caughtUp: true, summary: /batch-sink: wrote 0 messages in 0 batches/ },
    { command: "bun run example", caughtUp: false, summary: /orders-app: stopped after 1000 orders; offset stored/ }
  ]
  for (const { caughtUp, command, summary } of cases) {
    it(`${command}${caughtUp ? ", caught up" : ""}: the summary, exit 0`, async () => {
      const exampleStream = uniqueStream("terminal-example")
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "terminal-example-"))
      const args = command.includes("batches") ? `--out ${dir}/events.jsonl` : `--dir ${dir}`
      const term = terminal()
      try {
        expect((await cli("bun", "send", ["--stream", exampleStream, "--count", "1000"])).code).toBe(0)
        if (caughtUp) {
          const first = await cli("bun", "example:batches", ["--stream", exampleStream, "--out", `${dir}/events.jsonl`, "--until-end"])
          expect(first.stdout).toMatch(/wrote 1000 messages/)
        }
        term.type(`${command} --stream ${exampleStream} ${args}; echo EXIT=$?`)
        if (caughtUp) await new Promise((r) => setTimeout(r, 3000))
        else await term.waitFor(/processed 1000 orders/)
        term.ctrlC()
        const screen = await term.waitFor(/EXIT=\d+/, 20_000)
        expect(screen).toMatch(summary)
        expect(screen).toContain("EXIT=0")
      } finally {
        term.close()
        await deleteStream(exampleStream)
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }, 60_000)
  }
})

describe("no prompt, no password on the screen", () => {
  it("deno task send completes without any permission prompt", async () => {
    const term = terminal()
    try {
      term.type(`deno task send --stream ${stream}-deno --count 10; echo EXIT=$?`)
      const screen = await term.waitFor(/EXIT=\d+/)
      expect(screen).not.toContain("Allow?")
      expect(screen).toContain("Messages confirmed: true.")
      expect(screen).toContain("EXIT=0")
    } finally {
      term.close()
      await deleteStream(`${stream}-deno`)
    }
  }, 60_000)

  it("the password in --uri or RABBITMQ_STREAM_URI never appears (npm run, bun run; deno task with the env variable)", async () => {
    const secret = "Sup3rSecretPw"
    const uri = `rabbitmq-stream://guest:${secret}@localhost:5552/%2f`
    for (const command of [`npm run send -- --uri ${uri}`, `bun run send --uri ${uri}`]) {
      const term = terminal()
      try {
        term.type(`clear; ${command} --retry-for 0s; echo EXIT=$?`)
        // `clear` wipes the typed line: what remains is what the runners and the program printed.
        const screen = await term.waitFor(/EXIT=\d+/)
        expect(screen).toContain("authentication failed")
        expect(screen).not.toContain(secret)
      } finally {
        term.close()
      }
    }
    const term = terminal({ RABBITMQ_STREAM_URI: uri })
    try {
      term.type("deno task send --retry-for 0s; echo EXIT=$?")
      const screen = await term.waitFor(/EXIT=\d+/)
      expect(screen).toContain("authentication failed")
      expect(screen).not.toContain(secret)
    } finally {
      term.close()
    }
  }, 90_000)
})
