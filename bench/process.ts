/**
 * Whole processes, as users run them: how long `receive` takes from start to exit and how much
 * memory it peaks at, against the plain loop with the raw client (bench/raw-consume.mjs), on one
 * stream of N small messages (the tutorial's `hello i` ... `marker`).
 *
 *   node scripts/run.mjs bench/process.ts [--count 200000] [--runs 3] [--json FILE]
 *
 * Runs, alternating, each `runs` times: `node bench/raw-consume.mjs` (the raw Node loop),
 * `npm run receive`, `bun run receive`, `deno task receive` (tracking none, a fresh consumer name
 * each run, so each reads from the first message). Peak RSS is the process's VmHWM (Linux), read
 * from /proc while it runs (for `npm run` and `deno task`: the largest of the process tree).
 * Prints a table of medians: wall time, messages per second, peak RSS.
 *
 * With `--semi-spaces 16,32,64,128`: the young generation instead. `receive` run directly (no npm,
 * no deno task) on Node and Deno with V8's default young generation and with each
 * `--max-semi-space-size` (MB), and on Bun (JavaScriptCore: no such knob) once, against the raw loop.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import process from "node:process"
import { publishTutorialStream } from "./tutorial-stream.ts"

const argv = process.argv.slice(2)
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1]! : fallback
}
const count = Number(flag("count", "200000"))
const runs = Number(flag("runs", "3"))
const jsonFile = argv.includes("--json") ? flag("json", "") : undefined
const port = process.env.RABBITMQ_STREAM_PORT ?? "5552"
const stream = `bench-process-${process.pid}-${Date.now().toString(36)}`

/** Peak RSS (kB) of a process and its descendants, sampled every 20 ms from /proc. */
const treePeak = (pid: number) => {
  let peak = 0
  const children = (p: number): Array<number> => {
    try {
      return fs.readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number)
    } catch {
      return []
    }
  }
  const hwm = (p: number) => {
    try {
      return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? 0)
    } catch {
      return 0
    }
  }
  const sample = () => {
    const all = [pid]
    for (let i = 0; i < all.length; i++) all.push(...children(all[i]!))
    for (const p of all) peak = Math.max(peak, hwm(p))
  }
  const timer = setInterval(sample, 20)
  return () => {
    clearInterval(timer)
    return peak
  }
}

const timed = (command: string, args: ReadonlyArray<string>) =>
  new Promise<{ ms: number; rssMb: number; out: string }>((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } })
    const stop = treePeak(child.pid!)
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (out += d))
    child.on("exit", (code) => {
      const rssMb = stop() / 1024
      if (code !== 0) reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${out.slice(-300)}`))
      else resolve({ ms: performance.now() - t0, rssMb, out })
    })
  })

const receiveArgs = (name: string) => ["--stream", stream, "--name", name, "--tracking", "none"]
type Candidate = { label: string; run: (i: number) => Promise<{ ms: number; rssMb: number; out: string }> }
const rawLoop: Candidate = { label: "raw loop, Node (bench/raw-consume.mjs)", run: () => timed("node", ["bench/raw-consume.mjs", stream, port]) }
const semiSpaces = argv.includes("--semi-spaces") ? flag("semi-spaces", "").split(",").filter(Boolean).map(Number) : undefined
const youngGeneration = (sizes: ReadonlyArray<number>): ReadonlyArray<Candidate> => [
  rawLoop,
  ...[undefined, ...sizes].flatMap((mb): ReadonlyArray<Candidate> => {
    const v8Flag = mb === undefined ? [] : [`--max-semi-space-size=${mb}`]
    const size = mb === undefined ? "default" : `${mb} MB`
    return [
      { label: `receive, Node, semi-space ${size}`, run: (i) => timed("node", [...v8Flag, "scripts/run.mjs", "src/main.ts", "receive", ...receiveArgs(`y-node-${mb}-${i}`)]) },
      {
        label: `receive, Deno, semi-space ${size}`,
        run: (i) => timed("node_modules/.bin/deno", ["run", "-A", ...v8Flag.map((f) => `--v8-flags=${f}`), "src/main.ts", "receive", ...receiveArgs(`y-deno-${mb}-${i}`)])
      }
    ]
  }),
  { label: "receive, Bun", run: (i) => timed("node_modules/.bin/bun", ["src/main.ts", "receive", ...receiveArgs(`y-bun-${i}`)]) }
]
const candidates: ReadonlyArray<Candidate> = semiSpaces ? youngGeneration(semiSpaces) : [
  rawLoop,
  { label: "npm run receive (Node)", run: (i) => timed("npm", ["run", "-s", "receive", "--", ...receiveArgs(`p-npm-${i}`)]) },
  { label: "bun run receive", run: (i) => timed("node_modules/.bin/bun", ["run", "--silent", "receive", ...receiveArgs(`p-bun-${i}`)]) },
  { label: "deno task receive", run: (i) => timed("node_modules/.bin/deno", ["task", "-q", "receive", ...receiveArgs(`p-deno-${i}`)]) }
]

// The stream: N messages, published with a tuned raw client.
const client = await publishTutorialStream(stream, count, Number(port))

const results = new Map<string, Array<{ ms: number; rssMb: number }>>()
try {
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? candidates : [...candidates].reverse()
    for (const { label, run } of order) {
      const r = await run(i)
      if (!/Done consuming|raw loop: \d+ messages/.test(r.out)) throw new Error(`${label}: unexpected output ${r.out.slice(-200)}`)
      results.set(label, [...(results.get(label) ?? []), { ms: r.ms, rssMb: r.rssMb }])
      console.error(`[process] ${label}: ${(r.ms / 1000).toFixed(2)} s, peak RSS ${r.rssMb.toFixed(0)} MB`)
    }
  }
} finally {
  await client.deleteStream({ stream }).catch(() => undefined)
  await client.close().catch(() => undefined)
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const rawMs = median(results.get(candidates[0]!.label)!.map((r) => r.ms))
console.log(`\n### Whole processes, ${count.toLocaleString("en-US")} messages, median of ${runs}\n`)
console.log("| process | wall s | msg/s | vs raw Node loop (time) | peak RSS MB |")
console.log("|---|---:|---:|---:|---:|")
for (const { label } of candidates) {
  const rs = results.get(label)!
  const ms = median(rs.map((r) => r.ms))
  console.log(
    `| ${label} | ${(ms / 1000).toFixed(2)} | ${Math.round((count / ms) * 1000).toLocaleString("en-US")} | ${
      (rawMs / ms).toFixed(2)
    } | ${median(rs.map((r) => r.rssMb)).toFixed(0)} |`
  )
}
if (jsonFile) fs.writeFileSync(jsonFile, JSON.stringify({ count, runs, results: Object.fromEntries(results) }, null, 1))
process.exit(0)
