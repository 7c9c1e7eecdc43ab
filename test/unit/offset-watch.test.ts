// `offset --watch`'s pure pieces: the rate between two refreshes, the table drawn on a terminal
// and the JSON line written to a pipe.
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { watchJson, watchRows, watchTable } from "../../src/offset.ts"
import type { OffsetReport } from "../../src/StreamOffsets.ts"

const report = (consumerName: string, stored: bigint | undefined, last = 999n): OffsetReport => ({
  stream: "orders",
  consumerName,
  storedOffset: Option.fromNullable(stored),
  firstOffset: Option.some(0n),
  lastOffset: Option.some(last),
  lag: Option.some(stored === undefined ? last + 1n : last - stored)
})

describe("offset --watch", () => {
  it("the rate is the stored offset's move per second since the last refresh: none at the first, 0 for a move back", () => {
    const seen = new Map<string, { readonly stored: bigint; readonly at: number }>()
    expect(watchRows([report("a", 100n), report("b", undefined)], seen, 10_000).map((r) => r.rate)).toEqual([undefined, undefined])
    expect(watchRows([report("a", 300n), report("b", 49n)], seen, 12_000).map((r) => r.rate)).toEqual([100, 25])
    expect(watchRows([report("a", 50n), report("b", 49n)], seen, 14_000).map((r) => r.rate)).toEqual([0, 0])
  })

  it("draws a header and a line per consumer, names to the left and numbers to the right; says when there is none", () => {
    const seen = new Map<string, { readonly stored: bigint; readonly at: number }>()
    watchRows([report("billing", 0n)], seen, 0)
    const rows = watchRows([report("billing", 999n), report("audit-long-name", undefined)], seen, 2000)
    expect(watchTable(rows, "10:00:00, every 2s")).toEqual([
      "10:00:00, every 2s",
      "STREAM  CONSUMER         STORED  LAST   LAG  OFFSETS/S",
      "orders  billing             999   999     0      499.5",
      "orders  audit-long-name    none   999  1000          -"
    ])
    expect(watchTable([], "h")).toEqual(["h", "STREAM  CONSUMER  STORED  LAST  LAG  OFFSETS/S", "(no consumer has an offset on it yet)"])
  })

  it("writes one JSON object per refresh: offsets as strings, null when none", () => {
    const rows = watchRows([report("billing", undefined, 9n)], new Map(), 0)
    expect(JSON.parse(watchJson(rows, 0))).toEqual({
      time: "1970-01-01T00:00:00.000Z",
      consumers: [{ stream: "orders", consumer: "billing", storedOffset: null, lastOffset: "9", lag: "10", offsetsPerSecond: null }]
    })
  })
})
