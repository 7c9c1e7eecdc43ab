// Running the CLIs as a user would, and talking to the test broker directly.
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { type Client, connect } from "rabbitmq-stream-js-client"
import { expect } from "vitest"

export const root = path.resolve(import.meta.dirname, "../..")
const bin = path.join(root, "node_modules/.bin")
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, NO_COLOR: "1" }
export const port = Number(process.env.RABBITMQ_STREAM_PORT ?? "5552")

export interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export const run = (
  command: string,
  args: ReadonlyArray<string>,
  extraEnv: Record<string, string> = {},
  timeout = 60_000
) =>
  new Promise<Run>((resolve) => {
    const options = { cwd: root, env: { ...env, ...extraEnv }, timeout, maxBuffer: 256 * 1024 * 1024 }
    execFile(command, args, options, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })

/** How each runtime runs the package's commands, as the README says. */
export const runtimes = {
  node: (script: string, args: ReadonlyArray<string>) => ["npm", ["run", "-s", script, "--", ...args]] as const,
  bun: (script: string, args: ReadonlyArray<string>) => ["bun", ["run", "--silent", script, ...args]] as const,
  deno: (script: string, args: ReadonlyArray<string>) => ["deno", ["task", "-q", script, ...args]] as const
}
export type Runtime = keyof typeof runtimes

export const cli = (runtime: Runtime, script: string, args: ReadonlyArray<string>, extraEnv: Record<string, string> = {}) => {
  const [command, argv] = runtimes[runtime](script, args)
  return run(command, argv, extraEnv)
}

/** A CLI with `input` on its stdin, as `printf ... | bun run send --from -` would run it. */
export const piped = (runtime: Runtime, script: string, args: ReadonlyArray<string>, input: string | Uint8Array) =>
  new Promise<Run>((resolve) => {
    const [command, argv] = runtimes[runtime](script, args)
    const child = spawn(command, argv, { cwd: root, env })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }))
    child.stdin.end(input)
  })

/** A CLI process that keeps running: read its output as it comes, signal it, await its end. */
export interface Running {
  readonly child: ChildProcess
  /** SIGINT to the program. */
  readonly interrupt: () => void
  readonly output: () => string
  readonly waitFor: (text: string, timeoutMs?: number) => Promise<void>
  readonly exit: Promise<Run>
  /**
   * `exit`, bounded: a process still running after `ms` gets SIGTERM (SIGKILL 10 s later) and the
   * test fails with what it printed, rather than hitting the test's timeout with nothing to read.
   */
  readonly exitWithin: (ms: number) => Promise<Run>
  /** With `stdin: true`: what the program reads on stdin (`end()` closes it). */
  readonly stdin: { readonly write: (data: string) => Promise<void>; readonly end: () => void }
  /** With `pausedStdout`: stdout is not read (the program's writes wait, as for a slow reader) until this. */
  readonly readStdout: () => void
}

/**
 * The program itself, without the package manager around it (npm and bun exit at once on SIGINT
 * with their own code, whatever the program then does), as a service manager would run it.
 */
const direct = {
  node: (script: string, args: ReadonlyArray<string>) => ["node", ["scripts/run.mjs", ...entry(script), ...args]] as const,
  bun: (script: string, args: ReadonlyArray<string>) => ["bun", [...entry(script), ...args]] as const,
  deno: (script: string, args: ReadonlyArray<string>) => ["deno", ["run", "-A", ...entry(script), ...args]] as const
}
/** `receive` is `src/main.ts receive`; a path such as `../examples/orders-app` is a file relative to src/. */
const entry = (script: string): ReadonlyArray<string> =>
  ["send", "receive", "offset"].includes(script) ? ["src/main.ts", script] : [path.join("src", `${script}.ts`)]

/**
 * Starts a CLI process. With `stdoutFile`, its stdout goes to that file instead of a pipe: Node
 * writes files synchronously, so what it printed survives a SIGKILL (a pipe's userland buffer
 * does not); `output()` then reads the file.
 */
export const start = (
  runtime: Runtime,
  script: string,
  args: ReadonlyArray<string>,
  options: {
    readonly stdoutFile?: string
    readonly stdin?: boolean
    readonly pausedStdout?: boolean
    readonly env?: Record<string, string>
  } = {}
): Running => {
  const [command, argv] = direct[runtime](script, args)
  const file = options.stdoutFile
  const out = file === undefined ? "pipe" : fs.openSync(file, "w")
  const child = spawn(command, argv, { cwd: root, env: { ...env, ...options.env }, stdio: [options.stdin ? "pipe" : "ignore", out, "pipe"] })
  if (typeof out === "number") fs.closeSync(out)
  let piped = ""
  let stderr = ""
  const readStdout = () => (file === undefined ? piped : fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "")
  const reading = () => child.stdout?.on("data", (d) => (piped += d))
  if (!options.pausedStdout) reading()
  child.stderr!.on("data", (d) => (stderr += d))
  const exit = new Promise<Run>((resolve) =>
    // "close", not "exit": output still in the pipe when the process ends is read first.
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout: readStdout(), stderr }))
  )
  /** Waits for `text` on stdout or stderr (status lines are on stderr when stdout carries data). */
  const waitFor = async (text: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs
    while (!readStdout().includes(text) && !stderr.includes(text)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for "${text}"; stdout: ${readStdout()}; stderr: ${stderr}`)
      if (child.exitCode !== null) throw new Error(`exited before "${text}"; stdout: ${readStdout()}; stderr: ${stderr}`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  const interrupt = () => void child.kill("SIGINT")
  const exitWithin = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))
    const done = await Promise.race([exit, late])
    clearTimeout(timer)
    if (done !== undefined) return done
    child.kill("SIGTERM")
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000)
    const stopped = await exit
    clearTimeout(killer)
    throw new Error(`still running after ${ms} ms (then stopped: ${stopped.code}); stdout: ${stopped.stdout.slice(-2000)}; stderr: ${stopped.stderr.slice(-4000)}`)
  }
  // The program may stop before it read everything (EPIPE): its exit status says so, not the pipe.
  child.stdin?.on("error", () => undefined)
  const stdin = {
    write: (data: string) =>
      new Promise<void>((resolve) => {
        if (child.stdin!.write(data)) return resolve()
        child.stdin!.once("drain", () => resolve())
        child.stdin!.once("close", () => resolve())
      }),
    end: () => void child.stdin!.end()
  }
  return { child, interrupt, output: readStdout, waitFor, exit, exitWithin, stdin, readStdout: () => void reading() }
}

/** `message i` lines for i in [from, to), one per line: the input of a `send --from -`. */
export const messageLines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `message ${from + i}\n`).join("")

export const uniqueStream = (name: string) => `it-${name}-${process.pid}-${Date.now()}`

/** The summary lines of `receive`. */
export const parseSummary = (stdout: string) => {
  const done = /Done consuming, first offset (\w+), last offset (\w+)\./.exec(stdout)
  const consumed = /Consumed (\d+) messages\./.exec(stdout)
  if (!done || !consumed) throw new Error(`no summary in: ${stdout}`)
  const offset = (s: string) => (s === "none" ? undefined : BigInt(s))
  return { first: offset(done[1]!), last: offset(done[2]!), messages: Number(consumed[1]) }
}

/** A raw client on the test broker, closed after `f`. */
export const withClient = async <A>(f: (client: Client) => Promise<A>, onPort = port): Promise<A> => {
  const client = await connect({ hostname: "localhost", port: onPort, username: "guest", password: "guest", vhost: "/" })
  try {
    return await f(client)
  } finally {
    await client.close()
  }
}

export const deleteStream = (stream: string) =>
  withClient((client) => client.deleteStream({ stream }).catch(() => undefined))

/** A uniquely named stream for `f`, deleted after it (on the broker at `port`). */
export const withStream = async (name: string, f: (stream: string) => Promise<void>, onPort = port) => {
  const stream = uniqueStream(name)
  try {
    await f(stream)
  } finally {
    await withClient((client) => client.deleteStream({ stream }).catch(() => undefined), onPort).catch(() => undefined)
  }
}

/** A uniquely named super stream for `f`, deleted (with its partitions) after it. */
export const withSuperStream = async (name: string, f: (superStream: string) => Promise<void>, onPort = port) => {
  const superStream = uniqueStream(name)
  try {
    await f(superStream)
  } finally {
    await withClient((client) => client.deleteSuperStream({ streamName: superStream }).catch(() => undefined), onPort)
  }
}

/** Waits until the stream holds at least one chunk (the broker's stats: cheap enough to poll). */
export const waitForMessages = (stream: string, onPort = port) =>
  withClient(async (client) => {
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      const stats = await client.streamStatsRequest(stream).catch(() => undefined)
      if (stats && stats.committedChunkId >= 0n) return
      await new Promise((r) => setTimeout(r, 10))
    }
    throw new Error(`no message reached ${stream} within 30 s`)
  }, onPort)

/**
 * Consumes the whole stream once, for a stream whose offsets have gaps (a consumer stored offsets
 * on it: tracking entries take offsets): `total` messages with `total` distinct bodies.
 */
export const expectEachBodyOnce = async (stream: string, total: number, extraArgs: ReadonlyArray<string> = []) => {
  const check = await run("bun", [
    "src/main.ts", "receive", "--stream", stream, "--name", "check", "--no-marker", "--until-end", "--tracking", "none", "--print",
    ...extraArgs
  ], {}, 300_000)
  expect(check.code, check.stderr).toBe(0)
  const bodies = check.stdout.split("\n").flatMap((line) => (/^\d+\t/.test(line) ? [line.slice(line.indexOf("\t") + 1)] : []))
  expect(bodies).toHaveLength(total)
  expect(new Set(bodies).size).toBe(total)
}

/**
 * A named `send --from -` (Node, producer `p`) across a fault: fed the first half of `total`
 * lines, then `fault` once messages are in the stream, the second half written while `meanwhile`
 * runs (a wait, the fault healed), stdin closed. Expects it to finish with every message
 * published and confirmed (exit 0); gives its exit. Fed on stdin, messages are in flight when the
 * fault comes, whatever the machine's speed.
 */
export const namedSendAcross = async (
  stream: string,
  total: number,
  options: {
    readonly fault: () => Promise<unknown>
    readonly meanwhile?: () => Promise<unknown>
    readonly args?: ReadonlyArray<string>
    readonly onPort?: number
    readonly exitWithinMs?: number
  }
): Promise<Run> => {
  const producer = start("node", "send", [...(options.args ?? []), "--stream", stream, "--from", "-", "--producer", "p"], { stdin: true })
  await producer.stdin.write(messageLines(0, total / 2))
  await waitForMessages(stream, options.onPort)
  await options.fault()
  const rest = producer.stdin.write(messageLines(total / 2, total))
  await options.meanwhile?.()
  await rest
  producer.stdin.end()
  const exit = await producer.exitWithin(options.exitWithinMs ?? 120_000)
  expect(exit.code, exit.stderr).toBe(0)
  expect(exit.stdout).toContain(`Published ${total} messages.`)
  expect(exit.stdout).toContain("Messages confirmed: true.")
  return exit
}

/** Consumes the whole stream once: offsets 0 .. total-1 and `total` messages means no gap, no duplicate. */
export const expectEachMessageOnce = async (stream: string, total: number, extraArgs: ReadonlyArray<string> = []) => {
  const check = await cli("bun", "receive", [
    "--stream", stream, "--name", "check", "--no-marker", "--until-end", "--tracking", "none", ...extraArgs
  ])
  expect(parseSummary(check.stdout)).toEqual({ first: 0n, last: BigInt(total - 1), messages: total })
}
