/**
 * Bar chart (SVG) of the benchmark's throughput, from the JSON files bench/bench.ts writes with --json.
 *
 *   node scripts/run.mjs bench/chart.ts OUT.svg node.json bun.json deno.json [--date YYYY-MM-DD] [--markdown]
 *   node scripts/run.mjs bench/chart.ts --markdown node.json bun.json deno.json      (table only, no SVG)
 *
 * One JSON file per runtime, in the order the runtimes are to appear. The chart shows the largest size N
 * present in every file: two groups, "consume (tracking none)" and "produce", each with the runtimes side
 * by side and per runtime three bars: ours, the raw client, the raw client tuned (a bar without data, e.g.
 * a failed or skipped run, is left out). Values are the median over the rounds of n / ms * 1000 msg/s
 * (null samples ignored). --date sets the date in the title (default today); --markdown prints the same
 * medians as a Markdown table to stdout (the ratios there are ratios of the medians in the row).
 * Self-contained: no dependencies, the SVG is built as a string.
 */
import { readFileSync, writeFileSync } from "node:fs"
import process from "node:process"

// ------------------------------------------------------------------------------------------ input
type Kind = "produce" | "consume"
type Series = "ours" | "raw" | "tuned"
const SERIES: ReadonlyArray<Series> = ["ours", "raw", "tuned"]
const SERIES_LABEL: Record<Series, string> = { ours: "ours", raw: "raw client", tuned: "raw client tuned" }
/** Okabe-Ito colors: distinguishable with common color-vision deficiencies. */
const SERIES_COLOR: Record<Series, string> = { ours: "#0072B2", raw: "#E69F00", tuned: "#009E73" }
const GROUPS: ReadonlyArray<{ kind: Kind; label: string }> = [
  { kind: "consume", label: "consume (tracking none)" },
  { kind: "produce", label: "produce" }
]
const GOAL = 1_000_000

interface Sample {
  readonly ours?: number | null
  readonly raw?: number | null
  readonly tuned?: number | null
}
interface Result {
  readonly n: number
  readonly kind: string
  readonly samples: ReadonlyArray<Sample>
}
interface Run {
  readonly file: string
  readonly runtime: string
  readonly rounds: number | undefined
  readonly results: ReadonlyArray<Result>
}

const fail = (message: string): never => {
  console.error(`error: ${message}`)
  process.exit(2)
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const readRun = (file: string): Run => {
  let json: unknown
  try {
    json = JSON.parse(readFileSync(file, "utf8"))
  } catch (e) {
    return fail(`${file}: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (!isRecord(json) || typeof json.runtime !== "string" || !Array.isArray(json.results)) {
    return fail(`${file}: not a bench.ts --json file (expected { runtime, results: [...] })`)
  }
  const results = json.results.map((r: unknown, i: number): Result => {
    if (!isRecord(r) || typeof r.n !== "number" || typeof r.kind !== "string" || !Array.isArray(r.samples)) {
      return fail(`${file}: results[${i}] is not { n, kind, samples }`)
    }
    return { n: r.n, kind: r.kind, samples: r.samples.filter(isRecord) as ReadonlyArray<Sample> }
  })
  return { file, runtime: json.runtime, rounds: typeof json.rounds === "number" ? json.rounds : undefined, results }
}

// ------------------------------------------------------------------------------------------ medians
const median = (xs: ReadonlyArray<number>): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
/** msg/s from a duration in ms; NaN for a missing or failed sample (null, absent, not positive). */
const rate = (n: number, ms: number | null | undefined) =>
  typeof ms === "number" && Number.isFinite(ms) && ms > 0 ? (n / ms) * 1000 : NaN

interface Cell {
  readonly value: number // median msg/s, NaN when no sample has data
  readonly count: number // samples with data
}
const cellOf = (run: Run, n: number, kind: Kind, series: Series): Cell => {
  const rates = run.results
    .filter((r) => r.n === n && r.kind === kind)
    .flatMap((r) => r.samples.map((s) => rate(n, s[series])))
    .filter(Number.isFinite)
  return { value: median(rates), count: rates.length }
}

// ------------------------------------------------------------------------------------------ formatting
const escapeXml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;")
const int = (x: number) => Math.round(x).toLocaleString("en-US")
/** A rate in k msg/s, short enough for a bar: 1,234k, 845k, 45.6k, 3.21k. */
const kRate = (x: number) => {
  const k = x / 1000
  if (k >= 100) return `${int(k)}k`
  if (k >= 10) return `${k.toFixed(1)}k`
  return `${k.toFixed(2)}k`
}
/** The number of k msg/s on an axis tick: 0, 250, 1,000, 1,250. */
const kTick = (x: number) => (x / 1000).toLocaleString("en-US", { maximumFractionDigits: 2 })
const px = (x: number) => Number(x.toFixed(1)).toString()

/** A step of 1, 2, 2.5 or 5 times a power of ten giving about `target` ticks up to `max`. */
const niceStep = (max: number, target: number) => {
  const raw = max / target
  const power = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)
  return step ?? 10 * power
}

const today = () => {
  const d = new Date()
  const pad = (x: number) => String(x).padStart(2, "0")
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`
}

// ------------------------------------------------------------------------------------------ SVG
const WIDTH = 900
const HEIGHT = 530
const PLOT = { left: 78, right: WIDTH - 24, top: 104, bottom: 430 }
const GROUP_GAP = 64 // room for the "goal 1M" label after the consume group
const CLUSTER_GAP = 18
const BAR_GAP = 3
const MAX_BAR = 46

const svgChart = (runs: ReadonlyArray<Run>, n: number, date: string): string => {
  const cells = GROUPS.map(({ kind }) => runs.map((run) => SERIES.map((series) => cellOf(run, n, kind, series))))
  const maxValue = Math.max(GOAL, ...cells.flat(2).map((c) => c.value).filter(Number.isFinite))
  // Headroom above the highest bar for its label.
  const step = niceStep(maxValue * 1.08, 6)
  const yMax = Math.ceil((maxValue * 1.08) / step) * step
  const y = (v: number) => PLOT.bottom - (v / yMax) * (PLOT.bottom - PLOT.top)

  const out: Array<string> = []
  /** The values on the bars, drawn last: above the bars and the goal line. */
  const topLayer: Array<string> = []
  const push = (s: string) => out.push(s)
  const textElement = (x: number, yy: number, s: string, attrs: string) =>
    `<text x="${px(x)}" y="${px(yy)}"${attrs ? " " + attrs : ""}>${escapeXml(s)}</text>`
  const text = (x: number, yy: number, s: string, attrs = "") => push(textElement(x, yy, s, attrs))
  /** A label readable across the goal line and the grid: on a white box about its size (centered or left-aligned at x). */
  const boxedText = (x: number, yy: number, s: string, fontSize: number, centered: boolean, attrs: string) => {
    const w = s.length * fontSize * 0.58 + 4
    const box = `<rect x="${px(centered ? x - w / 2 : x - 2)}" y="${px(yy - fontSize * 0.85)}" width="${px(w)}" ` +
      `height="${px(fontSize * 1.1)}" rx="2" fill="#fff" fill-opacity="0.85"/>`
    return box + textElement(x, yy, s, `font-size="${fontSize}"${centered ? ` text-anchor="middle"` : ""} ${attrs}`.trim())
  }

  const rounds = [...new Set(runs.map((r) => r.rounds).filter((r) => r !== undefined))]
  const roundsText = rounds.length === 1 ? `median of ${rounds[0]} round(s)` : "median over rounds"
  const title = `Throughput, N = ${n.toLocaleString("en-US")} messages (${date})`
  const subtitle = `${runs.map((r) => r.runtime).join(" · ")} · ${roundsText}`

  push(`<?xml version="1.0" encoding="UTF-8"?>`)
  push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      `font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" fill="#222">`
  )
  push(`<title>${escapeXml(title)}</title>`)
  push(`<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`)
  text(WIDTH / 2, 30, title, `text-anchor="middle" font-size="19" font-weight="bold"`)
  text(WIDTH / 2, 52, subtitle, `text-anchor="middle" font-size="12.5" fill="#555"`)

  // Legend, centered, of the series with data.
  const shown = SERIES.filter((_, i) => cells.some((group) => group.some((cluster) => Number.isFinite(cluster[i]!.value))))
  const legendItems = shown.map((s) => ({ s, width: 14 + 6 + SERIES_LABEL[s].length * 7.2 + 24 }))
  let lx = WIDTH / 2 - legendItems.reduce((a, i) => a + i.width, 0) / 2
  for (const { s, width } of legendItems) {
    push(`<rect x="${px(lx)}" y="69" width="14" height="14" rx="2" fill="${SERIES_COLOR[s]}"/>`)
    text(lx + 20, 80.5, SERIES_LABEL[s], `font-size="13"`)
    lx += width
  }

  // Axis, grid and ticks.
  push(`<g font-size="11" fill="#444">`)
  for (let v = 0; v <= yMax + step / 1000; v += step) {
    const yy = y(v)
    push(`<line x1="${PLOT.left}" x2="${PLOT.right}" y1="${px(yy)}" y2="${px(yy)}" stroke="${v === 0 ? "#888" : "#e3e3e3"}"/>`)
    text(PLOT.left - 7, yy + 4, kTick(v), `text-anchor="end"`)
  }
  push(`</g>`)
  push(`<line x1="${PLOT.left}" x2="${PLOT.left}" y1="${PLOT.top}" y2="${PLOT.bottom}" stroke="#888"/>`)
  text(20, (PLOT.top + PLOT.bottom) / 2, "throughput (k msg/s)", `text-anchor="middle" font-size="12.5" fill="#444" transform="rotate(-90 20 ${px((PLOT.top + PLOT.bottom) / 2)})"`)

  // Groups of clusters of bars.
  const innerLeft = PLOT.left + 16
  const groupWidth = (PLOT.right - innerLeft - GROUP_GAP * (GROUPS.length - 1)) / GROUPS.length
  const clusterWidth = (groupWidth - CLUSTER_GAP * (runs.length - 1)) / runs.length
  const barWidth = Math.min(MAX_BAR, (clusterWidth - BAR_GAP * (SERIES.length - 1)) / SERIES.length)
  GROUPS.forEach(({ kind, label }, g) => {
    const gx = innerLeft + g * (groupWidth + GROUP_GAP)
    push(`<g>`)
    runs.forEach((run, r) => {
      const cx = gx + r * (clusterWidth + CLUSTER_GAP)
      const present = SERIES.map((series, i) => ({ series, cell: cells[g]![r]![i]! })).filter((b) => Number.isFinite(b.cell.value))
      const used = present.length * barWidth + Math.max(0, present.length - 1) * BAR_GAP
      let bx = cx + (clusterWidth - used) / 2
      for (const { series, cell } of present) {
        const top = y(cell.value)
        push(
          `<rect x="${px(bx)}" y="${px(top)}" width="${px(barWidth)}" height="${px(PLOT.bottom - top)}" fill="${SERIES_COLOR[series]}">` +
            `<title>${escapeXml(`${run.runtime}, ${label}, ${SERIES_LABEL[series]}: ${int(cell.value)} msg/s (median of ${cell.count})`)}</title></rect>`
        )
        topLayer.push(boxedText(bx + barWidth / 2, top - 4, kRate(cell.value), 10.5, true, ""))
        bx += barWidth + BAR_GAP
      }
      if (present.length === 0) text(cx + clusterWidth / 2, PLOT.bottom - 8, "no data", `text-anchor="middle" font-size="11" fill="#999"`)
      text(cx + clusterWidth / 2, PLOT.bottom + 18, run.runtime.split(" ")[0]!, `text-anchor="middle" font-size="12.5"`)
    })
    push(`</g>`)
    // Group label under a bracket spanning the group.
    const by = PLOT.bottom + 32
    push(`<path d="M${px(gx)} ${by - 5}V${by}H${px(gx + groupWidth)}V${by - 5}" fill="none" stroke="#aaa"/>`)
    text(gx + groupWidth / 2, by + 19, label, `text-anchor="middle" font-size="14" font-weight="bold"`)
    if (kind === "consume") {
      const gy = y(GOAL)
      push(
        `<line x1="${px(gx - 8)}" x2="${px(gx + groupWidth + 6)}" y1="${px(gy)}" y2="${px(gy)}" stroke="#C0392B" stroke-width="1.5" stroke-dasharray="6 4"/>`
      )
      push(boxedText(gx + groupWidth + 10, gy + 4, "goal 1M", 11.5, false, `font-weight="bold" fill="#C0392B"`))
    }
  })
  out.push(...topLayer)

  text(
    WIDTH - 12,
    HEIGHT - 10,
    "bars without data (failed or not run) are left out; each bar is the median over the rounds",
    `text-anchor="end" font-size="10.5" fill="#888"`
  )
  push(`</svg>`)
  return out.join("\n") + "\n"
}

// ------------------------------------------------------------------------------------------ Markdown
const markdownTable = (runs: ReadonlyArray<Run>, n: number): string => {
  const fmt = (c: Cell) => (Number.isFinite(c.value) ? int(c.value) : "-")
  const ratio = (a: Cell, b: Cell) => (Number.isFinite(a.value / b.value) ? (a.value / b.value).toFixed(2) : "-")
  const lines = [
    "| runtime | N | workflow | ours msg/s | raw msg/s | raw tuned msg/s | ours/raw | ours/tuned |",
    "|---|---:|---|---:|---:|---:|---:|---:|"
  ]
  for (const run of runs) {
    for (const { kind, label } of GROUPS) {
      const [ours, raw, tuned] = SERIES.map((s) => cellOf(run, n, kind, s)) as [Cell, Cell, Cell]
      lines.push(
        `| ${run.runtime} | ${n.toLocaleString("en-US")} | ${label} | ${fmt(ours)} | ${fmt(raw)} | ${fmt(tuned)} | ${ratio(ours, raw)} | ${ratio(ours, tuned)} |`
      )
    }
  }
  return lines.join("\n")
}

// ------------------------------------------------------------------------------------------ main
const USAGE = "usage: chart.ts OUT.svg FILE.json... [--date YYYY-MM-DD] [--markdown]   |   chart.ts --markdown FILE.json..."
const argv = process.argv.slice(2)
let date = today()
let markdown = false
const positional: Array<string> = []
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!
  if (a === "--markdown") markdown = true
  else if (a === "--date" || a.startsWith("--date=")) {
    const v = a === "--date" ? argv[++i] : a.slice("--date=".length)
    if (v === undefined || !/^\d{4}-\d{2}-\d{2}$/.test(v)) fail(`--date wants YYYY-MM-DD\n${USAGE}`)
    else date = v
  } else if (a === "--help" || a === "-h") {
    console.log(USAGE)
    process.exit(0)
  } else if (a.startsWith("--")) fail(`unknown flag ${a}\n${USAGE}`)
  else positional.push(a)
}
const outFile = positional[0]?.endsWith(".svg") ? positional.shift() : undefined
if (positional.length === 0 || (outFile === undefined && !markdown)) fail(USAGE)

const runs = positional.map(readRun)
const sizesOf = (run: Run) =>
  new Set(run.results.filter((r) => r.kind === "consume" || r.kind === "produce").map((r) => r.n))
const common = [...sizesOf(runs[0]!)].filter((n) => runs.every((run) => sizesOf(run).has(n)))
if (common.length === 0) {
  fail(`no size is present in every file: ${runs.map((r) => `${r.file}: ${[...sizesOf(r)].join(",") || "none"}`).join("; ")}`)
}
const n = Math.max(...common)

if (outFile !== undefined) {
  writeFileSync(outFile, svgChart(runs, n, date))
  console.error(`wrote ${outFile} (N = ${n.toLocaleString("en-US")}, ${runs.map((r) => r.runtime).join(", ")})`)
}
if (markdown) console.log(markdownTable(runs, n))
