// Writes test/fixtures/amqp/ours.json: each message of ours-messages.jsonl (receive --json's format)
// and the bytes this module writes for it. test/interop/rstream_decode.py then adds what rstream
// makes of those bytes; test/unit/amqp.test.ts checks both. Regenerate when the encoding changes:
//   node scripts/run.mjs test/interop/ours-fixtures.ts && PYTHONPATH=<rstream> python3 test/interop/rstream_decode.py
import { Either } from "effect"
import * as fs from "node:fs"
import { encodeMessage, messageFromJson } from "../../src/StreamOffsets.ts"

const dir = new URL("../fixtures/amqp/", import.meta.url)
const lines = fs.readFileSync(new URL("ours-messages.jsonl", dir), "utf8").split("\n").filter((l) => l.trim() !== "")
const fixtures = lines.map((line) => {
  const message = JSON.parse(line)
  const hex = Buffer.from(encodeMessage(Either.getOrThrow(messageFromJson(message)))).toString("hex")
  return { message, hex }
})
fs.writeFileSync(new URL("ours.json", dir), `${JSON.stringify(fixtures, null, 2)}\n`)
