// The TypeScript examples of README.md and docs/*.md, as a user pastes them: each is type-checked against the module
// and run against the broker (the import of "effect-stream-offsets" points at src/, and the
// stream gets a unique name). An example that does not compile, fails, or prints nothing fails here.
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { deleteStream, root, run, uniqueStream, withClient } from "./helpers.ts"

const dir = path.join(root, ".readme-check")
const documents = ["README.md", ...fs.readdirSync(path.join(root, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)]
const blocks = documents.flatMap((doc, d) =>
  [...fs.readFileSync(path.join(root, doc), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m, i) => ({ doc, id: `${d + 1}-${i + 1}`, code: m[1]! }))
)
const streams: Array<string> = []
afterAll(async () => {
  for (const stream of streams) {
    await deleteStream(stream)
    await withClient((client) => client.deleteSuperStream({ streamName: stream }).catch(() => undefined)).catch(() => undefined)
  }
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("the TypeScript examples of README.md and docs/", () => {
  it("README.md has some, and so has docs/library.md", () => {
    expect(blocks.filter((b) => b.doc === "README.md").length).toBeGreaterThan(0)
    expect(blocks.filter((b) => b.doc === "docs/library.md").length).toBeGreaterThan(0)
  })

  blocks.forEach(({ code, doc, id }) => {
    it(`${doc}: an example compiles and runs: ${code.split("\n").find((l) => l.includes("effect-stream-offsets"))?.trim()}`, async () => {
      const stream = uniqueStream(`readme-${id}`)
      streams.push(stream)
      fs.mkdirSync(dir, { recursive: true })
      const file = path.join(dir, `example-${id}.ts`)
      fs.writeFileSync(
        file,
        code.replaceAll(`"effect-stream-offsets"`, `"../src/StreamOffsets.ts"`)
          .replaceAll(`"effect-stream-offsets/telemetry"`, `"../src/Telemetry.ts"`)
          // Any free port: the example's own may be taken on a shared machine.
          .replaceAll("metricsPort: 9464", "metricsPort: 0")
          .replaceAll(`"orders"`, JSON.stringify(stream))
      )
      fs.writeFileSync(
        path.join(dir, "tsconfig.json"),
        JSON.stringify({ extends: "../tsconfig.json", include: ["*.ts"], compilerOptions: { noUnusedLocals: false } })
      )
      const typed = await run("node_modules/.bin/tsc", ["--noEmit", "-p", path.join(dir, "tsconfig.json")])
      expect(typed.stdout + typed.stderr, "tsc").toBe("")
      const ran = await run("node", ["scripts/run.mjs", file])
      expect(ran.code, ran.stderr).toBe(0)
      // What an example says it prints (`// prints: ...`), else the tutorial's summary.
      expect(ran.stdout).toContain(/\/\/ prints: (.+)/.exec(code)?.[1] ?? "consumed 100, last offset 99")
    }, 60_000)
  })
})
