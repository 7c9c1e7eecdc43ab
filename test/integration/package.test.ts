// The package a Node project installs: built JavaScript with types, importable by name.
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { root } from "./helpers.ts"

const npm = (...args: Array<string>) => execFileSync("npm", args, { cwd: root, encoding: "utf8" })

describe("the npm package", () => {
  beforeAll(() => void npm("run", "-s", "build"))

  it("builds dist/ with declarations and packs only what a user needs", () => {
    const [pack] = JSON.parse(npm("pack", "--dry-run", "--json", "--ignore-scripts")) as Array<{ files: Array<{ path: string }> }>
    const files = pack!.files.map((f) => f.path).sort()
    expect(files).toContain("dist/StreamOffsets.js")
    expect(files).toContain("dist/StreamOffsets.d.ts")
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
})
