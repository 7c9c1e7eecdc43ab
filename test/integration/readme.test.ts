// The README's TypeScript examples, as a user pastes them: each is type-checked against the module
// and run against the broker (the import of "effect-stream-offsets" points at src/, and the
// stream gets a unique name). An example that does not compile, fails, or prints nothing fails here.
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { deleteStream, root, run, uniqueStream, withClient } from "./helpers.ts"

const dir = path.join(root, ".readme-check")
const blocks = [...fs.readFileSync(path.join(root, "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!)
const streams: Array<string> = []
afterAll(async () => {
  for (const stream of streams) {
    await deleteStream(stream)
    await withClient((client) => client.deleteSuperStream({ streamName: stream }).catch(() => undefined)).catch(() => undefined)
  }
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("the README's TypeScript examples", () => {
  it("there is at least one", () => expect(blocks.length).toBeGreaterThan(0))

  blocks.forEach((code, i) => {
    it(`example ${i + 1} compiles and runs: ${code.split("\n").find((l) => l.includes("effect-stream-offsets"))?.trim()}`, async () => {
      const stream = uniqueStream(`readme-${i + 1}`)
      streams.push(stream)
      fs.mkdirSync(dir, { recursive: true })
      const file = path.join(dir, `example-${i + 1}.ts`)
      fs.writeFileSync(
        file,
        code.replaceAll(`"effect-stream-offsets"`, `"../src/StreamOffsets.ts"`).replaceAll(`"orders"`, JSON.stringify(stream))
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
