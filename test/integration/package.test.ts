// The package a Node project installs: built JavaScript with types, importable by name.
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { root } from "./helpers.ts"

const npm = (...args: Array<string>) => execFileSync("npm", args, { cwd: root, encoding: "utf8" })

describe("the npm package", () => {
  beforeAll(() => void npm("run", "-s", "build"))

  it("builds dist/ with declarations and packs only what a user needs", () => {
    const [pack] = JSON.parse(npm("pack", "--dry-run", "--json", "--ignore-scripts")) as Array<{ files: Array<{ path: string }> }>
    const files = pack!.files.map((f) => f.path).sort()
    expect(files).toContain("dist/StreamOffsets.js")
    expect(files).toContain("dist/StreamOffsets.d.ts")
    // The second entry point, effect-stream-offsets/telemetry (its OpenTelemetry packages are optional peers).
    expect(files).toContain("dist/Telemetry.js")
    expect(files).toContain("dist/Telemetry.d.ts")
    expect(files).toContain("README.md")
    expect(files.some((f) => f.startsWith("test/") || f.startsWith("scripts/"))).toBe(false)
  })

  it("is importable by its name, with the documented API", () => {
    const names = execFileSync(
      "node",
      ["--input-type=module", "-e", "const m = await import('effect-stream-offsets'); console.log(Object.keys(m).join(' '))"],
      { cwd: root, encoding: "utf8" }
    ).trim().split(" ")
    for (const name of ["send", "receive", "consume", "inspectOffset", "sendToSuperStream", "receiveSuperStream", "consumeSuperStream", "inspectSuperStreamOffsets", "Routing", "StreamBroker", "OffsetStore", "MemoryBroker", "StartPosition", "TrackingStrategy", "parseUri"]) {
      expect(names).toContain(name)
    }
  })

  it("has a built bin, stream-offsets, that runs on Node without tsx", () => {
    const [pack] = JSON.parse(npm("pack", "--dry-run", "--json", "--ignore-scripts")) as Array<{ files: Array<{ path: string }> }>
    expect(pack!.files.map((f) => f.path)).toContain("dist/main.js")
    const version = execFileSync("node", ["dist/main.js", "--version"], { cwd: root, encoding: "utf8" }).trim()
    expect(version).toBe(JSON.parse(npm("pkg", "get", "version")))
    const help = execFileSync("node", ["dist/main.js", "receive", "--help"], { cwd: root, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } })
    expect(help).toContain("RABBITMQ_STREAM_CONSUMER_NAME")
  })

  it("passes JSR's publish checks (deno publish --dry-run: type check, no slow types)", () => {
    // Throws (fails) on a type error or a slow type in the published module.
    execFileSync("node_modules/.bin/deno", ["publish", "--dry-run", "--allow-dirty"], { cwd: root, encoding: "utf8", stdio: "pipe" })
  }, 120_000)

  it("type-checks a consumer project against the built declarations", () => {
    // Fails (throws) on any type error in test/fixtures/consumer-project.ts.
    execFileSync(
      "node_modules/.bin/tsc",
      ["--noEmit", "--strict", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--target", "ES2023", "--skipLibCheck", "--types", "node", "test/fixtures/consumer-project.ts"],
      { cwd: root, encoding: "utf8" }
    )
  })

  it("installs from its tarball into an Effect app with its own effect: one copy of effect, and the app runs on Node, Bun and Deno", () => {
    const app = fs.mkdtempSync(path.join(os.tmpdir(), "eso-app-"))
    const [packed] = JSON.parse(npm("pack", "--json", "--ignore-scripts", "--pack-destination", app)) as Array<{ filename: string }>
    const effectVersion = JSON.parse(fs.readFileSync(path.join(root, "node_modules/effect/package.json"), "utf8")).version as string
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "an-effect-app", private: true, type: "module", dependencies: { effect: effectVersion } }))
    execFileSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", `effect@${effectVersion}`, `./${packed!.filename}`], { cwd: app, encoding: "utf8", stdio: "pipe" })
    // Shared with the app, never a copy of its own (npm would give it one whenever the app's version is outside its range).
    const installed = JSON.parse(fs.readFileSync(path.join(app, "node_modules/effect-stream-offsets/package.json"), "utf8"))
    for (const shared of ["effect", "@effect/platform"]) {
      expect(installed.peerDependencies?.[shared], shared).toBeDefined()
      expect(installed.dependencies?.[shared], shared).toBeUndefined()
    }
    // Every `effect` package under node_modules: one (the app's), since the module declares it as a peer.
    const copies = execFileSync("find", ["node_modules", "-path", "*/effect/package.json", "-not", "-path", "*/effect/*/effect/package.json"], { cwd: app, encoding: "utf8" })
      .trim().split("\n").filter((f) => JSON.parse(fs.readFileSync(path.join(app, f), "utf8")).name === "effect")
    expect(copies).toEqual(["node_modules/effect/package.json"])
    // The app's Effect runs the module's workflows with the memory broker: layers and tags from one copy.
    fs.writeFileSync(
      path.join(app, "app.mjs"),
      `import { Effect, Layer } from "effect"
import { isTutorialMarker, OffsetStore, receive, send, StreamBroker, tutorialMessages } from "effect-stream-offsets"
const program = Effect.gen(function*() {
  yield* send({ stream: "orders", messages: tutorialMessages(10) })
  return yield* receive({ stream: "orders", consumerName: "app", stop: { marker: isTutorialMarker } })
})
const summary = await Effect.runPromise(program.pipe(Effect.provide(Layer.merge(StreamBroker.layerMemory(), OffsetStore.layerMemory))))
console.log(\`received \${summary.messages}\`)
`
    )
    // And from CommonJS (what \`npm init\` makes, and tsx compiles a .ts file to there): require() of
    // the ES module, which Node 20.19+ does.
    fs.writeFileSync(
      path.join(app, "app.cjs"),
      fs.readFileSync(path.join(app, "app.mjs"), "utf8")
        .replace(/^import (\{[^}]*\}) from ("[^"]*")$/gm, "const $1 = require($2)")
        .replace(/const summary = await (.*)\n(.*)\n$/s, "$1.then((summary) => $2)\n")
    )
    const runs: Array<[string, Array<string>]> = [
      ["node", ["app.mjs"]],
      ["node", ["app.cjs"]],
      [path.join(root, "node_modules/.bin/bun"), ["app.mjs"]],
      [path.join(root, "node_modules/.bin/deno"), ["run", "--allow-env", "--allow-read", "--allow-sys", "--allow-net", "app.mjs"]]
    ]
    for (const [runtime, args] of runs) {
      const out = execFileSync(runtime, args, { cwd: app, encoding: "utf8", stdio: "pipe", env: { ...process.env, DENO_NO_PROMPT: "1" } })
      expect(out.trim(), runtime).toBe("received 10")
    }
    fs.rmSync(app, { recursive: true, force: true })
  }, 240_000)
})
