// The facts README.md and docs/ state that can be checked against the code: defaults, names (errors,
// metrics, spans), the test files each guarantee cites, versions and peer dependencies. (The flag
// tables are generated and checked by cli-docs.test.ts; the examples are run by readme.test.ts.)
import { describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { sendFlags } from "../../src/send.js"
import { DEFAULT_RETENTION, DEFAULT_RETRY_FOR } from "../../src/StreamOffsets.js"
import { needsManagedBroker } from "../../vitest.config.js"

const root = path.resolve(import.meta.dirname, "../..")
const read = (file: string) => fs.readFileSync(path.join(root, file), "utf8")
const readme = read("README.md")
const library = read("docs/library.md")
const guarantees = read("docs/guarantees.md")
const source = read("src/StreamOffsets.ts")
const json = (file: string) => JSON.parse(read(file))

/** The text from `heading` to the next heading of any level. */
const section = (text: string, heading: string) => {
  const start = text.indexOf(heading)
  expect(start, heading).toBeGreaterThanOrEqual(0)
  const rest = text.slice(start + heading.length)
  const end = rest.search(/\n#+ /)
  return end < 0 ? rest : rest.slice(0, end)
}
const backticked = (text: string) => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)
const sorted = (values: Iterable<string>) => [...new Set(values)].sort()

describe("README.md and docs/ against the code", () => {
  it("states the defaults the code has", () => {
    expect(DEFAULT_RETENTION.maxLengthBytes).toBe(2_000_000_000)
    expect(readme).toContain("retention: 2 GB `max-length-bytes` by default")
    expect(Duration.toMinutes(DEFAULT_RETRY_FOR)).toBe(2)
    expect(readme).toContain("waited out for `--retry-for` (2 minutes)")
    expect(sendFlags.count.default).toBe("100")
    expect(readme).toContain("sends 100 messages")
    expect(readme).toContain("Publishing 100 messages...")
    expect(readme).toContain(`every test file except the ${needsManagedBroker.length} that restart`)
  })

  it("lists every error the module defines, and no other", () => {
    const defined = sorted([...source.matchAll(/Data\s*\.TaggedError\(\s*"(\w+)"/g)].map((m) => m[1]!))
    const errors = section(library, "## Errors")
    const paragraph = errors.slice(errors.indexOf("All tagged"))
    const listed = sorted(backticked(paragraph).filter((name) => /^[A-Z]\w+$/.test(name)))
    expect(listed).toEqual(defined)
  })

  it("lists every metric and span, with their names", () => {
    const part = section(library, "## Metrics and spans").replace(/\s+/g, " ")
    const metrics = [...source.matchAll(/export const (\w+): Metric\.Metric\.\w+<\w+> = Metric\.\w+\(\s*"(\w+)"/g)]
    expect(metrics.length).toBeGreaterThan(0)
    for (const [, name, key] of metrics) expect(part).toContain(`\`${name}\` (\`${key}\`)`)
    const documentedMetrics = [...part.matchAll(/`(\w+)` \(`(stream_offsets_\w+)`\)/g)].map((m) => m[1]!)
    expect(sorted(documentedMetrics)).toEqual(sorted(metrics.map((m) => m[1]!)))
    const spans = sorted([...source.matchAll(/"(StreamOffsets\.[\w.]+)"/g)].map((m) => m[1]!))
    expect(sorted(backticked(part).filter((name) => name.startsWith("StreamOffsets.")))).toEqual(spans)
  })

  it("cites test files that exist", () => {
    const cited = sorted([readme, guarantees, read("CONTRIBUTING.md")].flatMap((text) =>
      [...text.matchAll(/([\w-]+\.test\.ts)/g)].map((m) => m[1]!)
    ))
    const files = new Set(
      ["test/unit", "test/integration"].flatMap((dir) => fs.readdirSync(path.join(root, dir)))
    )
    expect(cited.filter((file) => !files.has(file))).toEqual([])
    // And every guarantee in the README names at least one.
    const promises = section(readme, "## Guarantees").split("\n- ").slice(1)
    expect(promises.length).toBeGreaterThan(5)
    for (const promise of promises) expect(promise, promise).toMatch(/\.test\.ts/)
  })

  it("states one version and the peer dependencies package.json declares", () => {
    const pkg = json("package.json")
    expect(json("deno.json").version).toBe(pkg.version)
    expect(read("CHANGELOG.md")).toContain(pkg.version)
    // The OpenTelemetry packages are optional peers: only effect-stream-offsets/telemetry needs them.
    const optional = (name: string) => pkg.peerDependenciesMeta?.[name]?.optional === true
    expect(Object.keys(pkg.peerDependencies ?? {}).filter((name) => !optional(name)).sort()).toEqual(["@effect/platform", "effect"])
    expect(Object.keys(pkg.peerDependencies ?? {}).filter(optional)).toContain("@effect/opentelemetry")
    expect(readme).toContain("`effect` and `@effect/platform` are peer dependencies")
  })
})
