/**
 * The flag tables of docs/cli.md, generated from the commands' own flag definitions so that the
 * docs cannot drift from the CLI (test/unit/cli-docs.test.ts fails when they differ).
 *
 *   node scripts/run.mjs scripts/cli-docs.ts --print    print the tables
 *   node scripts/run.mjs scripts/cli-docs.ts --write    rewrite them in docs/cli.md
 *
 * In docs/cli.md each table sits between `<!-- flags: COMMAND -->` and `<!-- /flags -->`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"
import type { Flags } from "../src/cli.ts"
import { offsetFlags } from "../src/offset.ts"
import { receiveFlags } from "../src/receive.ts"
import { sendFlags } from "../src/send.ts"

export const commands: Record<string, Flags> = { send: sendFlags, receive: receiveFlags, offset: offsetFlags }

const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("<", "&lt;")

/** One command's flags as a markdown table: flag, environment variable, default, meaning. */
export const flagTable = (flags: Flags): string =>
  [
    "| flag | env | default | meaning |",
    "|---|---|---|---|",
    ...Object.entries(flags).map(([name, spec]) =>
      `| \`--${name}\`${spec.repeated ? " (repeatable)" : ""} | ${spec.env === undefined ? "" : `\`${spec.env}\``} | ${
        spec.boolean ? "off" : spec.default === undefined ? "" : `\`${spec.default}\``
      } | ${cell(spec.help)} |`
    )
  ].join("\n")

const BLOCK = /<!-- flags: (\w+) -->\n[\s\S]*?<!-- \/flags -->/g

/** `text` (docs/cli.md) with every flag table replaced by the generated one. */
export const withFlagTables = (text: string): string =>
  text.replace(BLOCK, (_, command: string) => {
    const flags = commands[command]
    if (flags === undefined) throw new Error(`docs/cli.md: no command "${command}" (known: ${Object.keys(commands).join(", ")})`)
    return `<!-- flags: ${command} -->\n${flagTable(flags)}\n<!-- /flags -->`
  })

export const docsFile = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "docs", "cli.md")

// Run as a script (the test imports this module without these flags).
if (process.argv.includes("--write")) {
  fs.writeFileSync(docsFile, withFlagTables(fs.readFileSync(docsFile, "utf8")))
  console.error(`wrote the flag tables of ${docsFile}`)
} else if (process.argv.includes("--print")) {
  process.stdout.write(Object.entries(commands).map(([command, flags]) => `## ${command}\n\n${flagTable(flags)}\n`).join("\n"))
}
