// docs/cli.md's flag tables are the commands' own flag definitions: a flag added, renamed or
// described anew without `node scripts/run.mjs scripts/cli-docs.ts --write` fails here.
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import { commands, docsFile, withFlagTables } from "../../scripts/cli-docs.ts"

describe("docs/cli.md", () => {
  const text = fs.readFileSync(docsFile, "utf8")

  it("has a flag table for every command", () => {
    for (const command of Object.keys(commands)) expect(text).toContain(`<!-- flags: ${command} -->`)
  })

  it("has the flag tables the commands' definitions make (regenerate: scripts/cli-docs.ts --write)", () => {
    expect(text).toBe(withFlagTables(text))
  })

  it("names every flag of every command", () => {
    for (const flags of Object.values(commands)) {
      for (const name of Object.keys(flags)) expect(text).toContain(`\`--${name}\``)
    }
  })
})
