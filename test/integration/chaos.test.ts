// A short seeded chaos run (`npm run chaos`) on the 3-node cluster: producers and consumers on
// Node, Bun and Deno while faults are injected one after another (connections closed, nodes
// stopped, killed and frozen, a disk alarm, clients killed); the ledger must show nothing lost and
// nothing doubled where it must not be.
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { run } from "./helpers.ts"

afterAll(() => run("bash", ["scripts/broker.sh", "cluster", "down"], {}, 300_000), 300_000)

describe("npm run chaos", () => {
  it("a 2-minute run, seed 41 (a node killed, a node frozen, a disk alarm: at least those three): every fed message in the stream once and consumed; the ledger says so", async () => {
    const ledgerFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "chaos-test-")), "ledger.json")
    const result = await run("npm", ["run", "-s", "chaos", "--", "--minutes", "2", "--seed", "41", "--min-faults", "3", "--json", ledgerFile], {}, 900_000)
    expect(result.code, `${result.stdout}\n${result.stderr.slice(-6000)}`).toBe(0)
    expect(result.stdout).toContain("Nothing lost; nothing doubled where it must not be.")
    const ledger = JSON.parse(fs.readFileSync(ledgerFile, "utf8"))
    expect(ledger.faults).toBeGreaterThanOrEqual(3)
    // Seed 41's first three faults, whatever each took (the seed's sequence does not depend on timing).
    const count = (kind: string) => ledger.recoverySeconds.find((r: { kind: string }) => r.kind === kind)?.count ?? 0
    for (const kind of ["kill", "freeze", "alarm"]) expect(count(kind), kind).toBeGreaterThanOrEqual(1)
    for (const part of [ledger.stream, ledger.superStream]) {
      expect(part.fed).toBeGreaterThan(100_000)
      expect(part.lost).toBe(0)
      expect(part.duplicatedInStream).toBe(0)
      expect(part.notConsumed).toBe(0)
      expect(part.producerExit).toBe(0)
    }
    if (!ledger.stream.consumerKilled) expect(ledger.stream.consumedTwice).toBe(0)
  }, 900_000)
})
