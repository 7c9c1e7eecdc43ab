/**
 * A chaos run: producers and consumers on the 3-node cluster while a seeded schedule injects
 * faults, then a ledger of what was published, confirmed, consumed, lost and duplicated.
 *
 *   npm run chaos -- [--minutes 10] [--seed N] [--rate 4000] [--min-faults N] [--json FILE]
 *
 * Workload (every process a CLI, as users run them; streams replicated on the three nodes):
 *   P  named `send --from -` (Node) on a stream, fed `p <i>` lines at `rate` per second
 *   R  `receive --print` (Node) of that stream, printing to a file (written synchronously)
 *   Q  named `send --super-stream --from -` (Deno) on a 3-partition super stream, fed `q <i>`
 *   A, B  `receive --super-stream --single-active` (Bun, Deno) of it, one consumer name
 * Faults, one at a time, 5-15 s apart, each lasting 5-15 s (the seed picks kind, node, durations;
 * the same seed gives the same faults in the same order however long each takes), for `minutes`
 * and at least `--min-faults` of them (the run goes on past `minutes` until they happened): a node's
 * client connections closed (`cut`), a node stopped (`stop`) or killed (`kill`, SIGKILL) and
 * started again, a node's VM frozen and thawed (`freeze`), a disk alarm raised and cleared
 * (`alarm`), a client process killed with SIGKILL and started again (`client`: P, Q or R; a
 * producer is fed its lines again from the first, and skips what the broker has).
 * Recovery: from the end of a fault until a message fed after it has been consumed by R and by
 * A or B.
 *
 * At the end: producers' stdin closed (they exit 0 once all is confirmed), consumers given time
 * to catch up, then SIGTERM; a fresh reader reads each stream. Lost (must be 0): fed but not in
 * the stream, or in the stream but not processed. Duplicated: in the stream twice (must be 0: named
 * producers), processed twice by R (0 unless R was killed: the tracking window) or by A/B (at a
 * hand-over after a lost connection). Exit 1 when anything was lost or doubled where it must not be.
 * The ledger goes to stdout (and to FILE as JSON), progress to stderr. A single active group the
 * broker leaves without an active consumer (RabbitMQ 4.0.5's coordinator, see `healStuckGroups`)
 * is said, counted in the ledger, and healed by restarting consumers A and B.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import process from "node:process"

const argv = process.argv.slice(2)
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback
}
const minutes = Number(flag("minutes", "10"))
const seed = Number(flag("seed", String(Date.now() % 100_000)))
const rate = Number(flag("rate", "4000"))
const jsonFile = flag("json", "")
const minFaults = Number(flag("min-faults", "0"))
if (!(minutes > 0) || !Number.isInteger(seed) || !(rate > 0) || !(Number.isInteger(minFaults) && minFaults >= 0)) {
  process.stderr.write("error: --minutes and --rate must be positive numbers, --seed an integer, --min-faults a count\n")
  process.exit(2)
}

const root = path.resolve(import.meta.dirname, "..")
const bin = path.join(root, "node_modules/.bin")
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, NO_COLOR: "1" }
const uri = "rabbitmq-stream://guest:guest@localhost:5561,localhost:5562,localhost:5563/%2f"
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chaos-"))
const stream = `chaos-${seed}-${Date.now().toString(36)}`
const superStream = `${stream}-super`
const partitions = [0, 1, 2].map((i) => `${superStream}-${i}`)
const t0 = Date.now()
const say = (line: string) => process.stderr.write(`chaos ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s: ${line}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// ------------------------------------------------------------------ the seeded schedule
/** mulberry32: the same seed, the same faults in the same order. */
const random = (() => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
})()
const between = (lo: number, hi: number) => lo + random() * (hi - lo)
const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!

// ------------------------------------------------------------------ processes
const broker = (...args: Array<string>) =>
  new Promise<void>((resolve, reject) =>
    execFile("bash", ["scripts/broker.sh", ...args], { cwd: root, env, timeout: 300_000 }, (error, _out, stderr) =>
      error ? reject(new Error(`broker.sh ${args.join(" ")} failed: ${stderr.trim().split("\n").at(-1)}`)) : resolve()
    )
  )

/** Every client process still running: killed if the run is interrupted or fails. */
const children = new Set<ChildProcess>()
const abandon = (why: string, code: number) => {
  for (const child of children) child.kill("SIGKILL")
  process.stderr.write(`${why}; the run's files are in ${dir}\n`)
  process.exit(code)
}
process.on("SIGINT", () => abandon("chaos: interrupted", 130))
process.on("SIGTERM", () => abandon("chaos: terminated", 143))

const commands = {
  node: (args: ReadonlyArray<string>) => ["node", ["scripts/run.mjs", "src/main.ts", ...args]] as const,
  bun: (args: ReadonlyArray<string>) => ["bun", ["src/main.ts", ...args]] as const,
  deno: (args: ReadonlyArray<string>) => ["deno", ["run", "-A", "src/main.ts", ...args]] as const
}
type Runtime = keyof typeof commands

interface Proc {
  readonly child: ChildProcess
  readonly exited: Promise<number>
  /** False once it exited (`exitCode` stays null for a process killed by a signal). */
  readonly alive: () => boolean
  readonly stderr: () => string
}
/** Runs a CLI: stdout to `<file>.out`, stderr kept and written to `<file>.err`, each line stamped with the run's time. */
const launch = (runtime: Runtime, args: ReadonlyArray<string>, file: string, stdin: boolean): Proc => {
  const [command, argv] = commands[runtime](args)
  const out = fs.openSync(`${file}.out`, "w")
  const child = spawn(command, argv, { cwd: root, env, stdio: [stdin ? "pipe" : "ignore", out, "pipe"] })
  fs.closeSync(out)
  children.add(child)
  child.on("close", () => children.delete(child))
  let stderr = ""
  const errFile = fs.openSync(`${file}.err`, "w")
  child.stderr!.on("data", (d) => {
    stderr += d
    const at = ((Date.now() - t0) / 1000).toFixed(1).padStart(6)
    fs.writeSync(errFile, String(d).replace(/^(?=.)/gm, `${at}s `))
  })
  child.on("close", () => fs.closeSync(errFile))
  child.stdin?.on("error", () => undefined)
  let alive = true
  const exited = new Promise<number>((resolve) =>
    child.on("close", (code, signal) => {
      alive = false
      resolve(code ?? (signal ? 128 : 1))
    })
  )
  return { child, exited, alive: () => alive, stderr: () => stderr }
}

/** A producer fed `<prefix> <i>` lines: `fed` grows with time, a pump writes what its process lacks. */
class Producer {
  fed = 0
  proc!: Proc
  private written = 0
  private runs = 0
  private pumping = false
  readonly exits: Array<{ code: number; stderr: string }> = []
  constructor(readonly who: string, readonly runtime: Runtime, readonly prefix: string, readonly args: ReadonlyArray<string>) {
    this.start()
  }
  start() {
    this.proc = launch(this.runtime, this.args, path.join(dir, `${this.who}-${this.runs++}`), true)
    this.written = 0
    void this.pump()
  }
  async pump() {
    if (this.pumping) return
    this.pumping = true
    const proc = this.proc
    while (proc === this.proc && this.written < this.fed && proc.alive()) {
      const to = Math.min(this.fed, this.written + 5000)
      let text = ""
      for (let i = this.written; i < to; i++) text += `${this.prefix} ${i}\n`
      this.written = to
      if (!proc.child.stdin!.write(text)) {
        await Promise.race([new Promise<void>((r) => proc.child.stdin!.once("drain", r)), proc.exited])
      }
    }
    this.pumping = false
    if (proc !== this.proc) void this.pump()
  }
  feed(n: number) {
    this.fed += n
    void this.pump()
  }
  async kill() {
    this.proc.child.kill("SIGKILL")
    this.exits.push({ code: await this.proc.exited, stderr: this.proc.stderr() })
  }
  async finish() {
    while (this.written < this.fed && this.proc.alive()) await sleep(100)
    this.proc.child.stdin!.end()
    const code = await this.proc.exited
    this.exits.push({ code, stderr: this.proc.stderr() })
    return code
  }
}

/** A consumer whose `--print` lines (`[partition\t]offset\tbody`) are read from its files as they grow. */
class Consumer {
  proc!: Proc
  private runs = 0
  private files: Array<{ file: string; read: number; tail: string }> = []
  /** How many times each sequence number was processed. */
  seen = new Uint8Array(1 << 20)
  processed = 0
  /** The highest sequence number processed, per partition (`""` on a plain stream). */
  readonly maxSeq = new Map<string, number>()
  readonly exits: Array<{ code: number; stderr: string }> = []
  constructor(readonly who: string, readonly runtime: Runtime, readonly args: ReadonlyArray<string>) {
    this.start()
  }
  start() {
    const file = path.join(dir, `${this.who}-${this.runs++}`)
    this.proc = launch(this.runtime, this.args, file, false)
    this.files.push({ file: `${file}.out`, read: 0, tail: "" })
  }
  poll() {
    for (const f of this.files) {
      const size = fs.statSync(f.file).size
      if (size === f.read) continue
      const fd = fs.openSync(f.file, "r")
      const buffer = Buffer.alloc(size - f.read)
      fs.readSync(fd, buffer, 0, buffer.length, f.read)
      fs.closeSync(fd)
      f.read = size
      const lines = (f.tail + buffer.toString("utf8")).split("\n")
      f.tail = lines.pop()!
      for (const line of lines) {
        const tab = line.lastIndexOf("\t")
        const body = line.slice(tab + 1)
        const first = line.indexOf("\t")
        const partition = first < tab ? line.slice(0, first) : ""
        const seq = Number(body.slice(2))
        if (!Number.isInteger(seq)) continue
        while (seq >= this.seen.length) {
          const grown = new Uint8Array(this.seen.length * 2)
          grown.set(this.seen)
          this.seen = grown
        }
        this.seen[seq] = Math.min(255, this.seen[seq]! + 1)
        this.processed++
        if (seq > (this.maxSeq.get(partition) ?? -1)) this.maxSeq.set(partition, seq)
      }
    }
  }
  async kill() {
    this.proc.child.kill("SIGKILL")
    this.exits.push({ code: await this.proc.exited, stderr: this.proc.stderr() })
  }
  async stop() {
    this.proc.child.kill("SIGTERM")
    const code = await this.proc.exited
    this.exits.push({ code, stderr: this.proc.stderr() })
    this.poll()
    return code
  }
}

/** Whether, on each of these partitions, one of the consumers processed a message numbered `at` or later. */
const passed = (at: number, on: ReadonlyArray<string>, ...consumers: ReadonlyArray<Consumer>) =>
  on.every((partition) => consumers.some((c) => (c.maxSeq.get(partition) ?? -1) >= at))

/** Distinct, missing and doubled sequence numbers in 0 .. n-1 over some consumers' counts. */
const tally = (n: number, ...consumers: ReadonlyArray<Consumer>) => {
  let missing = 0
  let doubled = 0
  for (let i = 0; i < n; i++) {
    let times = 0
    for (const c of consumers) times += c.seen[i] ?? 0
    if (times === 0) missing++
    else doubled += times - 1
  }
  return { missing, doubled }
}

/**
 * What the broker says of the single active group on each partition, written to the run's files;
 * gives the partitions whose group has members and none active.
 */
const describeGroups = async (why: string) => {
  const file = path.join(dir, `groups-${Math.round((Date.now() - t0) / 1000)}s.txt`)
  let text = `${why}\n`
  const withoutActive: Array<string> = []
  for (const partition of partitions) {
    const members = await new Promise<string>((resolve) =>
      execFile("bash", ["scripts/broker.sh", "cluster", "group", "1", partition, "g"], { cwd: root, env, timeout: 60_000 }, (error, out, err) =>
        resolve(`${out}${error ? err : ""}`))
    )
    if (members.includes("{state,inactive}") && !members.includes("{state,active}")) withoutActive.push(partition)
    text += `${partition}:\n${members}\n`
  }
  fs.writeFileSync(file, text)
  say(`${why}: the single active groups as the broker sees them are in ${file}`)
  return withoutActive
}

/**
 * RabbitMQ 4.0.5 (the version here) can leave a single active group with members and none active
 * when several of its consumers' connections go down at once (a node lost): its coordinator sends
 * the activation to a dead connection and does not choose again (rabbitmq-server#13657, #13671,
 * fixed in later releases). No client can see that state, and one member leaving and joining
 * does not end it (seen: the broker then waits on). When a pipeline does not flow again and the
 * broker shows such a group, it is said and counted, and both consumers are stopped (SIGTERM,
 * which stores their offsets) and started again: the group empties, and the first to join is made
 * active. The ledger still has to show nothing lost and nothing doubled.
 */
const brokerStuckGroups: Array<string> = []
const healStuckGroups = async (why: string, group: ReadonlyArray<Consumer>) => {
  const stuck = await describeGroups(why)
  if (stuck.length === 0) return false
  brokerStuckGroups.push(...stuck)
  say(`the broker left ${stuck.join(", ")} without an active consumer (RabbitMQ 4.0.5: rabbitmq-server#13657, #13671); restarting ${group.map((c) => c.who).join(" and ")} so that it chooses again`)
  await Promise.all(group.map((c) => c.stop()))
  for (const c of group) {
    c.start()
    await sleep(2000)
  }
  return true
}

// ------------------------------------------------------------------ faults
type Kind = "cut" | "stop" | "kill" | "freeze" | "alarm" | "client"
const kinds: ReadonlyArray<Kind> = ["cut", "stop", "kill", "freeze", "alarm", "client"]

const main = async () => {
  say(`seed ${seed}, ${minutes} min, ${rate} messages/s to each producer; files in ${dir}`)
  await broker("cluster", "up")
  const onCluster = ["--uri", uri]
  const p = new Producer("P", "node", "p", [
    "send", ...onCluster, "--stream", stream, "--from", "-", "--producer", "p", "--initial-cluster-size", "3"
  ])
  const q = new Producer("Q", "deno", "q", [
    "send", ...onCluster, "--super-stream", superStream, "--partitions", "3", "--from", "-", "--producer", "q", "--initial-cluster-size", "3"
  ])
  const feeding = setInterval(() => {
    p.feed(rate / 5)
    q.feed(rate / 5)
  }, 200)
  await sleep(3000)
  const r = new Consumer("R", "node", ["receive", ...onCluster, "--stream", stream, "--name", "r", "--no-marker", "--print"])
  const group = ["receive", ...onCluster, "--super-stream", superStream, "--name", "g", "--single-active", "--no-marker", "--print"]
  const a = new Consumer("A", "bun", group)
  await sleep(2000)
  const b = new Consumer("B", "deno", group)
  const polling = setInterval(() => [r, a, b].forEach((c) => c.poll()), 500)

  const faults: Array<{ kind: Kind; target: string; lasted: number; recovered: number }> = []
  const until = t0 + minutes * 60_000
  await sleep(between(5_000, 10_000))
  while (Date.now() < until || faults.length < minFaults) {
    const kind = pick(kinds)
    const n = pick(["1", "2", "3"])
    const lasting = Math.round(between(5_000, 15_000))
    const injected = Date.now()
    let target = `node ${n}`
    if (kind === "cut") await broker("cluster", "cut-node", n)
    else if (kind === "stop" || kind === "kill") {
      await broker("cluster", `${kind}-node`, n)
      await sleep(lasting)
      await broker("cluster", "start-node", n)
    } else if (kind === "freeze") {
      await broker("cluster", "freeze-node", n)
      await sleep(lasting)
      await broker("cluster", "thaw-node", n)
    } else if (kind === "alarm") {
      await broker("cluster", "alarm-node", n, "on")
      await sleep(lasting)
      await broker("cluster", "alarm-node", n, "off")
    } else {
      const victim = pick(["P", "Q", "R"] as const)
      target = victim
      const it = victim === "P" ? p : victim === "Q" ? q : r
      await it.kill()
      await sleep(Math.round(between(500, 3_000)))
      it.start()
    }
    const healed = Date.now()
    // Recovered: a message fed after the fault ended has come through both pipelines, on every partition.
    const [pAt, qAt] = [p.fed, q.fed]
    const flowing = async (ms: number) => {
      const until = Date.now() + ms
      while (!(passed(pAt, [""], r) && passed(qAt, partitions, a, b)) && Date.now() < until) await sleep(100)
      return passed(pAt, [""], r) && passed(qAt, partitions, a, b)
    }
    if (!(await flowing(60_000)) && await healStuckGroups(`not flowing 60 s after ${kind} ${target}`, [a, b])) await flowing(120_000)
    const recovered = Date.now() - healed
    if (recovered >= 180_000) await describeGroups(`not flowing after ${kind} ${target}`)
    faults.push({ kind, target, lasted: healed - injected, recovered })
    say(`${kind} ${target}: lasted ${((healed - injected) / 1000).toFixed(1)} s, flowing again ${(recovered / 1000).toFixed(1)} s after`)
    // Drawn every time, so that the seed's sequence of faults does not depend on how long they took.
    const pause = between(5_000, 15_000)
    if (faults.length < minFaults) await sleep(pause)
    else if (Date.now() < until) await sleep(Math.min(until - Date.now(), pause))
  }

  say("faults over: closing the producers' input")
  clearInterval(feeding)
  const pCode = await p.finish()
  const qCode = await q.finish()
  say(`producers exited ${pCode} and ${qCode}; waiting for the consumers to catch up`)
  const caughtUp = Date.now()
  let healing = false
  while (Date.now() - caughtUp < 180_000) {
    if (tally(p.fed, r).missing === 0 && tally(q.fed, a, b).missing === 0) break
    if (!healing && Date.now() - caughtUp > 60_000 && tally(q.fed, a, b).missing > 0) {
      healing = true
      await healStuckGroups("not caught up after 60 s", [a, b])
    }
    await sleep(500)
  }
  if (tally(q.fed, a, b).missing > 0) await describeGroups("not caught up")
  clearInterval(polling)
  const codes = await Promise.all([r.stop(), a.stop(), b.stop()])

  // What each stream holds, read by a fresh consumer.
  const check = (who: string, args: ReadonlyArray<string>) => {
    const c = new Consumer(who, "node", ["receive", ...onCluster, ...args, "--name", `check-${Date.now()}`, "--no-marker", "--until-end", "--tracking", "none", "--print"])
    return c.proc.exited.then((code) => {
      c.poll()
      if (code !== 0) throw new Error(`the check of ${who} failed: ${c.proc.stderr().trim().split("\n").at(-1)}`)
      return c
    })
  }
  const [inStream, inSuper] = await Promise.all([check("check-stream", ["--stream", stream]), check("check-super", ["--super-stream", superStream])])
  const stored = { stream: tally(p.fed, inStream), superStream: tally(q.fed, inSuper) }
  const consumed = { r: tally(p.fed, r), sac: tally(q.fed, a, b) }
  const rKilled = faults.some((f) => f.kind === "client" && f.target === "R")

  const byKind = kinds.map((kind) => {
    const these = faults.filter((f) => f.kind === kind).map((f) => f.recovered).sort((x, y) => x - y)
    return {
      kind,
      count: these.length,
      p50: these.length ? these[Math.floor((these.length - 1) / 2)]! / 1000 : undefined,
      max: these.length ? these.at(-1)! / 1000 : undefined
    }
  })
  const ledger = {
    seed,
    minutes,
    rate,
    faults: faults.length,
    stream: {
      fed: p.fed,
      producerExit: pCode,
      inStream: p.fed - stored.stream.missing,
      lost: stored.stream.missing,
      duplicatedInStream: stored.stream.doubled,
      consumed: r.processed,
      notConsumed: consumed.r.missing,
      consumedTwice: consumed.r.doubled,
      consumerKilled: rKilled
    },
    superStream: {
      fed: q.fed,
      producerExit: qCode,
      inStream: q.fed - stored.superStream.missing,
      lost: stored.superStream.missing,
      duplicatedInStream: stored.superStream.doubled,
      consumed: a.processed + b.processed,
      notConsumed: consumed.sac.missing,
      consumedTwice: consumed.sac.doubled
    },
    consumerExits: codes,
    /** Partitions the broker left without an active consumer (see healStuckGroups). */
    brokerStuckGroups,
    recoverySeconds: byKind
  }
  const ok = pCode === 0 && qCode === 0 && codes.every((c) => c === 0) &&
    stored.stream.missing === 0 && stored.stream.doubled === 0 && stored.superStream.missing === 0 &&
    stored.superStream.doubled === 0 && consumed.r.missing === 0 && consumed.sac.missing === 0 &&
    (rKilled || consumed.r.doubled === 0)

  const row = (cells: ReadonlyArray<unknown>) => `| ${cells.map((c) => (c === undefined ? "-" : String(c))).join(" | ")} |`
  const out = [
    `Chaos run: seed ${seed}, ${minutes} min, ${faults.length} faults, ${rate} messages/s per producer`,
    "",
    row(["", "fed", "in the stream", "lost", "twice in the stream", "consumed", "not consumed", "consumed twice"]),
    row(["---", "---", "---", "---", "---", "---", "---", "---"]),
    row(["stream (P, R)", p.fed, ledger.stream.inStream, ledger.stream.lost, ledger.stream.duplicatedInStream, r.processed, consumed.r.missing, consumed.r.doubled]),
    row(["super stream (Q, A+B)", q.fed, ledger.superStream.inStream, ledger.superStream.lost, ledger.superStream.duplicatedInStream, ledger.superStream.consumed, consumed.sac.missing, consumed.sac.doubled]),
    "",
    row(["fault", "count", "flowing again after: p50 (s)", "max (s)"]),
    row(["---", "---", "---", "---"]),
    ...byKind.map((k) => row([k.kind, k.count, k.p50?.toFixed(1), k.max?.toFixed(1)])),
    "",
    ...(brokerStuckGroups.length === 0 ? [] : [
      `The broker left ${brokerStuckGroups.length} single active group(s) without an active consumer (${brokerStuckGroups.join(", ")}: RabbitMQ 4.0.5, rabbitmq-server#13657/#13671); consumers A and B were restarted so that it chose again.`,
      ""
    ]),
    ok ? "Nothing lost; nothing doubled where it must not be." : "FAILED: something was lost or doubled (see above); files kept in " + dir
  ]
  process.stdout.write(out.join("\n") + "\n")
  if (jsonFile) fs.writeFileSync(jsonFile, JSON.stringify(ledger, null, 2) + "\n")
  if (!ok) {
    for (const [who, c] of [["P", p], ["Q", q], ["R", r], ["A", a], ["B", b]] as const) {
      process.stderr.write(`--- ${who} stderr (last run) ---\n${c.exits.at(-1)?.stderr.split("\n").slice(-15).join("\n")}\n`)
    }
    process.exitCode = 1
  } else fs.rmSync(dir, { recursive: true, force: true })
  await removeStreams()
}

/** The streams are removed afterwards, with a raw client. */
const removeStreams = async () => {
  const { connect } = await import("rabbitmq-stream-js-client")
  const client = await connect({ hostname: "localhost", port: 5562, username: "guest", password: "guest", vhost: "/" })
  await client.deleteStream({ stream }).catch(() => undefined)
  await client.deleteSuperStream({ streamName: superStream }).catch(() => undefined)
  await client.close().catch(() => undefined)
}

main().catch((error: unknown) => abandon(`error: ${error instanceof Error ? error.message : String(error)}`, 1))
