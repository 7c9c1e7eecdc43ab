// The AMQP 1.0 codec and the stream protocol's frames, on bytes: what rstream (the tutorial's Python
// client) writes, what the Java and .NET clients' encoders write (hand-built after their rules), every
// AMQP 1.0 type, falsy values, described types, sequences, and what cannot be read.
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as fs from "node:fs"
import { gzipSync } from "node:zlib"
import {
  Amqp,
  type AmqpValue,
  decodeMessage,
  encodeMessage,
  Internal,
  messageFromJson,
  messageToJson,
  type OutgoingMessage,
  type StreamMessage,
  UndecodableMessage,
  toOutbound
} from "../../src/StreamOffsets.ts"

const { decodeDeliver, publishFrames } = Internal

const fixtures: Record<string, string> = JSON.parse(
  fs.readFileSync(new URL("../fixtures/amqp/rstream.json", import.meta.url), "utf8")
)
const hex = (text: string) => new Uint8Array(Buffer.from(text.replace(/\s+/g, ""), "hex"))
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const bytes = (...values: Array<number>) => new Uint8Array(values)
const decoded = (data: Uint8Array, offset = 0n): StreamMessage => {
  const message = decodeMessage(data, offset)
  if (message instanceof UndecodableMessage) throw new Error(`undecodable: ${message.reason}`)
  return message
}
const WHEN = new Date("2026-12-02T03:24:31.500Z")
const UID = Amqp.uuid("12345678-1234-5678-9abc-def012345678")

describe("decoding what rstream writes", () => {
  it("application properties whose values are falsy (0, false, empty, null)", () => {
    const m = decoded(hex(fixtures["falsy-application-properties"]!), 42n)
    expect(m.offset).toBe(42n)
    expect(text(m.body)).toBe("hello 0")
    expect(m.properties).toEqual({ messageId: "id-0", correlationId: 7n, contentType: "text/plain" })
    expect(m.applicationProperties).toEqual({ region: "eu", n: 0, flag: false, empty: "", none: null })
  })

  it("every simple type, and message annotations", () => {
    const m = decoded(hex(fixtures["every-simple-type"]!))
    expect(m.applicationProperties).toEqual({
      small: 5,
      negative: -200,
      int: 100000,
      long: 2n ** 40n,
      double: 3.5,
      true: true,
      binary: bytes(0, 1, 255),
      uuid: UID,
      timestamp: WHEN,
      text: "h\u00e9llo \u2603"
    })
    expect(m.messageAnnotations).toEqual({ "x-opt-string": "v", "x-stream-filter-value": "eu", "x-opt-int": 0 })
  })

  it("the header and all thirteen properties", () => {
    const m = decoded(hex(fixtures["header-and-all-properties"]!))
    expect(m.header).toEqual({ durable: true, priority: 5, ttl: 60000, firstAcquirer: false, deliveryCount: 0 })
    expect(m.properties).toEqual({
      messageId: UID,
      userId: new TextEncoder().encode("guest"),
      to: "/queues/q",
      subject: "subj",
      replyTo: "/queues/r",
      correlationId: bytes(1, 2),
      contentType: "application/json",
      contentEncoding: "gzip",
      absoluteExpiryTime: WHEN,
      creationTime: WHEN,
      groupId: "g",
      groupSequence: 3,
      replyToGroupId: "rg"
    })
  })

  it("amqp-value bodies: a string (its text is the body) and a map", () => {
    const s = decoded(hex(fixtures["amqp-value-string"]!))
    expect(s.amqpValue).toBe("a string body")
    expect(text(s.body)).toBe("a string body")
    const m = decoded(hex(fixtures["amqp-value-map"]!))
    expect(m.amqpValue).toEqual(Amqp.map([["k", 1], ["list", [1, "two", null]]]))
    expect(m.body.length).toBe(0)
  })

  it("amqp-sequence bodies, one list per section", () => {
    expect(decoded(hex(fixtures["amqp-sequence"]!)).amqpSequence).toEqual([[1, "two"], [3.5]])
  })

  it("32-bit encodings: a long body, a long key and value", () => {
    const m = decoded(hex(fixtures["large-body"]!))
    expect(text(m.body)).toBe("x".repeat(300))
    expect(m.applicationProperties).toEqual({ ["k".repeat(300)]: "v".repeat(300) })
  })
})

describe("decoding what the Java and .NET encoders write (their rules, by hand)", () => {
  it("Java (Proton): list8 properties without trailing nulls, map8, full-width long, typed values", () => {
    const m = decoded(hex(`
      0053 73 c0 0d 03 a1 02 6964 40 a1 05 2f712f7171
      0053 74 c1 2d 0c
        a1 01 6c 81 0000000000000005
        a1 01 62 51 ff
        a1 01 73 61 fffe
        a1 01 75 50 07
        a1 01 66 72 3fc00000
        a1 01 63 73 00002603
      0053 75 a0 03 616263`))
    expect(m.properties).toEqual({ messageId: "id", to: "/q/qq" })
    expect(m.applicationProperties).toEqual({
      l: 5n,
      b: Amqp.byte(-1),
      s: Amqp.short(-2),
      u: Amqp.ubyte(7),
      f: Amqp.float(1.5),
      c: Amqp.char("\u2603")
    })
    expect(text(m.body)).toBe("abc")
  })

  it(".NET: list32 properties with explicit nulls, map32, zero-width uint and ulong, symbol values", () => {
    const m = decoded(hex(`
      0053 73 d0 00000015 0000000d 40 40 40 a1 01 73 40 44 a3 01 74 40 40 40 40 43 40
      0053 74 d1 00000010 00000004 a1 01 61 a3 03 73796d a1 01 7a 44
      0053 75 b0 00000001 7a`))
    expect(m.properties).toEqual({ subject: "s", correlationId: 0n, contentType: "t", groupSequence: 0 })
    expect(m.applicationProperties).toEqual({ a: Amqp.symbol("sym"), z: Amqp.ulong(0n) })
    expect(text(m.body)).toBe("z")
  })

  it("descriptors as full ulongs and as symbols; several data sections; delivery annotations and a footer read past", () => {
    const m = decoded(hex(`
      00 53 71 c1 06 02 a3 01 64 54 01
      00 80 0000000000000075 a0 02 6162
      00 a3 10 616d71703a646174613a62696e617279 a0 01 63
      00 53 78 c1 01 00`))
    expect(text(m.body)).toBe("abc")
  })

  it("arrays (one constructor, also described), maps with non-string keys, described values, decimals, uuids", () => {
    const m = decoded(hex(`
      0053 72 c1 41 08
        a3 01 61 e0 0a 02 a3 03 787878 03 797979
        a3 01 6d c1 06 02 54 01 a1 01 76
        a3 01 64 00 a3 03 666f6f a1 03 626172
        a3 01 65 f0 00000010 00000002 00 53 05 71 00000001 00000002
      0053 75 a0 00`))
    expect(m.messageAnnotations).toEqual({
      a: Amqp.array([Amqp.symbol("xxx"), Amqp.symbol("yyy")]),
      m: Amqp.map([[1, "v"]]),
      d: Amqp.described(Amqp.symbol("foo"), "bar"),
      e: Amqp.array([Amqp.described(Amqp.ulong(5n), 1), Amqp.described(Amqp.ulong(5n), 2)])
    })
  })

  it("a double with an integral value stays a double; other numbers are plain", () => {
    const m = decoded(hex(`0053 74 c1 19 04 a1 01 64 82 4000000000000000 a1 01 66 82 3ff8000000000000 0053 75 a0 00`))
    expect(m.applicationProperties).toEqual({ d: Amqp.double(2), f: 1.5 })
  })
})

describe("what cannot be read is an UndecodableMessage, never a thrown error", () => {
  const cases: Array<[string, string]> = [
    ["raw bytes (rstream's binary codec)", "68656c6c6f"],
    ["a truncated data section", "005375a00a6162"],
    ["an unknown format code", "005374c10502a1016bff"],
    ["a list whose size lies", "005373c0ff0340404040"],
    ["invalid UTF-8 in a string", "005374c10702a1016ba101ff005375a000"],
    ["a map with an odd count", "005374c1020140005375a000"],
    ["an unknown section", "00537fa000"],
    ["a property of the wrong type", "005373c003015401005375a000"]
  ]
  for (const [name, data] of cases) {
    it(name, () => {
      const message = decodeMessage(hex(data), 9n)
      expect(message).toBeInstanceOf(UndecodableMessage)
      expect(message.offset).toBe(9n)
      expect((message as UndecodableMessage).reason.length).toBeGreaterThan(0)
    })
  }
})

describe("encoding: what we write reads back field for field", () => {
  const all: OutgoingMessage = {
    body: "payload",
    header: { durable: true, priority: 4, ttl: 1000, firstAcquirer: false, deliveryCount: 2 },
    properties: {
      messageId: 18446744073709551615n,
      userId: bytes(1),
      to: "t",
      subject: "s",
      replyTo: "r",
      correlationId: UID,
      contentType: "text/plain",
      contentEncoding: "utf-8",
      absoluteExpiryTime: WHEN,
      creationTime: WHEN,
      groupId: "g",
      groupSequence: 7,
      replyToGroupId: "rg"
    },
    applicationProperties: {
      zero: 0,
      no: false,
      empty: "",
      none: null,
      int: -2147483648,
      beyondInt: 2147483648,
      fraction: 0.25,
      long: -(2n ** 63n),
      binary: bytes(0, 0),
      when: WHEN,
      list: [1, [2, "three"], []],
      ...Object.fromEntries(
        [
          Amqp.ubyte(255),
          Amqp.ushort(65535),
          Amqp.uint(4294967295),
          Amqp.uint(0),
          Amqp.ulong(0n),
          Amqp.ulong(200n),
          Amqp.byte(-128),
          Amqp.short(-32768),
          Amqp.float(0.5),
          Amqp.double(3),
          Amqp.char("\u{1f600}"),
          Amqp.symbol("sym"),
          UID,
          { _tag: "decimal64", value: bytes(1, 2, 3, 4, 5, 6, 7, 8) },
          Amqp.array([1, 2, 3]),
          Amqp.array([Amqp.symbol("a"), Amqp.symbol("bb")]),
          Amqp.array([]),
          Amqp.map([[Amqp.ulong(1n), "one"], [null, [true]]]),
          Amqp.described(Amqp.symbol("x:y"), Amqp.map([]))
        ].map((v, i) => [`typed${i}`, v as AmqpValue])
      )
    },
    messageAnnotations: { "x-opt-key": "v", "x-opt-n": 0 }
  }

  it("every field and type", () => {
    const m = decoded(encodeMessage(all), 3n)
    expect(text(m.body)).toBe("payload")
    expect(m.header).toEqual(all.header)
    expect(m.properties).toEqual({ ...all.properties, messageId: 18446744073709551615n })
    expect(m.applicationProperties).toEqual({
      ...all.applicationProperties,
      beyondInt: 2147483648, // a double
      typed16: Amqp.array([]) // elements of no type: nulls
    })
    expect(m.messageAnnotations).toEqual(all.messageAnnotations)
  })

  it("a filter value is written as the x-stream-filter-value annotation", () => {
    const m = decoded(encodeMessage({ body: "b", filterValue: "eu" }))
    expect(m.messageAnnotations).toEqual({ "x-stream-filter-value": "eu" })
    expect(toOutbound({ body: "b", messageAnnotations: { "x-stream-filter-value": "us" } }).filterValue).toBe("us")
  })

  it("a plain body is one data section, as every client writes it", () => {
    expect(Buffer.from(encodeMessage("hi")).toString("hex")).toBe("005375a0026869")
    expect(toOutbound("hi").head).toBeUndefined()
  })

  it("values that AMQP cannot carry are refused before anything is sent", () => {
    const refused: Array<AmqpValue> = [
      2n ** 63n,
      Amqp.ubyte(256),
      Amqp.uint(-1),
      Amqp.ulong(-1n),
      Amqp.char("ab"),
      Amqp.symbol("\u00e9"),
      Amqp.uuid("nope"),
      Amqp.array([1, "mixed"]),
      new Date(Number.NaN)
    ]
    for (const value of refused) expect(() => encodeMessage({ body: "", applicationProperties: { k: value } })).toThrow()
    expect(() => toOutbound({ body: "", filterValue: "" })).toThrow()
    expect(() => toOutbound({ body: "", filterValue: "x".repeat(40_000) })).toThrow(/at most 32767 bytes/)
  })
})

/** A Deliver frame (v2, without the size prefix) holding `entries`, as the broker sends a chunk. */
const deliverFrame = (first: bigint, entries: Array<Uint8Array>, records: number, chunkType = 0) => {
  const data = Buffer.concat(entries)
  const header = Buffer.alloc(2 + 2 + 1 + 8 + 1 + 1 + 2 + 4 + 8 + 8 + 8 + 4 + 4 + 4 + 4)
  let o = 0
  o = header.writeUInt16BE(8, o)
  o = header.writeUInt16BE(2, o)
  o = header.writeUInt8(1, o)
  o = header.writeBigUInt64BE(0n, o) + 1 // committed chunk id; magic
  o = header.writeUInt8(chunkType, o)
  o = header.writeUInt16BE(entries.length, o)
  o = header.writeUInt32BE(records, o)
  o += 8 + 8
  o = header.writeBigUInt64BE(first, o) + 4
  header.writeUInt32BE(data.length, o)
  return new Uint8Array(Buffer.concat([header, data]))
}
const simple = (message: Uint8Array) => {
  const b = Buffer.alloc(4 + message.length)
  b.writeUInt32BE(message.length)
  b.set(message, 4)
  return b
}
const subEntry = (compression: number, messages: Array<Uint8Array>, compress = (b: Buffer) => b) => {
  const plain = Buffer.concat(messages.map(simple))
  const data = compress(plain)
  const b = Buffer.alloc(1 + 2 + 4 + 4)
  b.writeUInt8(0x80 | (compression << 4))
  b.writeUInt16BE(messages.length, 1)
  b.writeUInt32BE(plain.length, 3)
  b.writeUInt32BE(data.length, 7)
  return Buffer.concat([b, data])
}

describe("delivered chunks", () => {
  it("plain entries and sub-entry batches (none, gzip) get consecutive offsets; zstd and a poison message are undecodable at theirs", () => {
    const m = (s: string) => encodeMessage(s)
    const frame = deliverFrame(100n, [
      simple(m("a")),
      subEntry(0, [m("b"), m("c")]),
      subEntry(1, [m("d"), m("e"), m("f")], gzipSync),
      subEntry(4, [m("g"), m("h")]),
      simple(hex("00537fa000")),
      simple(m("i"))
    ], 9)
    const { messages, subscriptionId } = decodeDeliver(frame)
    expect(subscriptionId).toBe(1)
    expect(messages.map((x) => [x.offset, x instanceof UndecodableMessage ? "?" : text(x.body)])).toEqual([
      [100n, "a"],
      [101n, "b"],
      [102n, "c"],
      [103n, "d"],
      [104n, "e"],
      [105n, "f"],
      [106n, "?"],
      [107n, "?"],
      [108n, "?"],
      [109n, "i"]
    ])
    expect((messages[6] as UndecodableMessage).reason).toContain("zstd")
  })

  it("a chunk that cannot be split into entries reports each of its records", () => {
    const frame = deliverFrame(7n, [simple(encodeMessage("a")), Buffer.from([0, 0, 0, 99, 1])], 3)
    const { messages } = decodeDeliver(frame)
    expect(messages.map((x) => [x.offset, x instanceof UndecodableMessage])).toEqual([[7n, false], [8n, true], [9n, true]])
  })

  it("tracking chunks hold no messages", () => {
    expect(decodeDeliver(deliverFrame(0n, [Buffer.alloc(10)], 1, 1)).messages).toEqual([])
  })
})

/** Reads a Publish frame back: its version and, per entry, its id, filter value and messages. */
const readPublish = (frame: Uint8Array) => {
  const b = Buffer.from(frame)
  expect(b.readUInt32BE(0)).toBe(frame.length - 4)
  expect(b.readUInt16BE(4)).toBe(2)
  const version = b.readUInt16BE(6)
  const count = b.readUInt32BE(9)
  let o = 13
  const entries: Array<{ id: bigint; filter?: string; bodies: Array<string> }> = []
  for (let i = 0; i < count; i++) {
    const id = b.readBigUInt64BE(o)
    o += 8
    let filter: string | undefined
    if (version === 2) {
      const n = b.readInt16BE(o)
      o += 2
      if (n >= 0) (filter = b.toString("utf8", o, o + n), o += n)
    }
    if ((b[o]! & 0x80) === 0) {
      const size = b.readUInt32BE(o)
      entries.push({ id, ...(filter ? { filter } : {}), bodies: [text(decoded(frame.subarray(o + 4, o + 4 + size)).body)] })
      o += 4 + size
    } else {
      const n = b.readUInt16BE(o + 1)
      const length = b.readUInt32BE(o + 7)
      const records = decodeDeliver(deliverFrame(0n, [b.subarray(o, o + 11 + length)], n)).messages
      entries.push({ id, bodies: records.map((r) => text(r.body)) })
      o += 11 + length
    }
  }
  expect(o).toBe(frame.length)
  return { version, entries }
}

describe("publish frames", () => {
  const entry = (id: bigint, ...messages: Array<OutgoingMessage | string>) => ({ publishingId: id, messages: messages.map(toOutbound) })

  it("version 1 without filter values, split so that no frame is over the limit", () => {
    const entries = Array.from({ length: 100 }, (_, i) => entry(BigInt(i + 1), `message ${i}`))
    const frames = publishFrames(3, entries, { frameMax: 500, compression: "none" })
    expect(frames.length).toBeGreaterThan(1)
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(500)
    const read = frames.map(readPublish)
    expect(read.every((r) => r.version === 1)).toBe(true)
    expect(read.flatMap((r) => r.entries.map((e) => e.bodies[0]))).toEqual(entries.map((_, i) => `message ${i}`))
  })

  it("version 2 with filter values (a message without one has none)", () => {
    const [frame] = publishFrames(0, [entry(1n, { body: "a", filterValue: "eu" }), entry(2n, "b")], { frameMax: 1 << 20, compression: "none" })
    expect(readPublish(frame!)).toEqual({ version: 2, entries: [{ id: 1n, filter: "eu", bodies: ["a"] }, { id: 2n, bodies: ["b"] }] })
  })

  it("sub-entry batches, plain and gzip, read back as the broker will deliver them", () => {
    for (const compression of ["none", "gzip"] as const) {
      const [frame] = publishFrames(0, [entry(5n, "a", "b", "c")], { frameMax: 1 << 20, compression })
      expect(readPublish(frame!).entries).toEqual([{ id: 5n, bodies: ["a", "b", "c"] }])
    }
  })

  it("a message larger than a frame is refused", () => {
    expect(() => publishFrames(0, [entry(1n, "x".repeat(1000))], { frameMax: 500, compression: "none" })).toThrow(/does not fit/)
  })
})

// What rstream (the tutorial's Python client) makes of the bytes we write: recorded by running it
// (test/interop/ours-fixtures.ts, then rstream_decode.py), since it cannot be installed here in CI.
// The bytes must stay those rstream read: a change of encoding fails here, and asks for a new run.
describe("what rstream reads of what we write", () => {
  const fixtures: Array<{ message: Record<string, any>; hex: string; rstream: Record<string, any> }> = JSON.parse(
    fs.readFileSync(new URL("../fixtures/amqp/ours.json", import.meta.url), "utf8")
  )
  /** Our JSON value as rstream's script prints what it decoded (ints for longs and timestamps, bytes as text when UTF-8). */
  const asRstream = (json: any): any => {
    if (json === null || typeof json !== "object") return json
    if (Array.isArray(json)) return json.map(asRstream)
    const [key, value] = Object.entries(json)[0]!
    if (key === "long" || key === "ulong") return Number(value)
    if (key === "timestamp") return new Date(value as string).getTime()
    if (key === "binary") return bytesAsRstream(Buffer.from(value as string, "base64"))
    return json
  }
  const bytesAsRstream = (b: Buffer) => {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(b)
    } catch {
      return { binary: b.toString("base64") }
    }
  }
  const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
  const propertyAsRstream = (name: string, json: any) =>
    name === "userId"
      ? bytesAsRstream(Buffer.from(json, "base64"))
      : name.endsWith("Time")
      ? new Date(json).getTime()
      : asRstream(json)
  const record = (r: Record<string, any> | undefined) =>
    r === undefined ? null : Object.fromEntries(Object.entries(r).map(([k, v]) => [k, asRstream(v)]))

  for (const { hex: recorded, message, rstream } of fixtures) {
    it(`${String(message.body).slice(0, 20) || JSON.stringify(message).slice(0, 40)}: the same bytes, read field for field`, () => {
      const outgoing = Either.getOrThrow(messageFromJson(message))
      expect(Buffer.from(encodeMessage(outgoing)).toString("hex")).toBe(recorded)
      const body = message.amqpValue !== undefined || message.amqpSequence !== undefined
        ? null
        : message.encoding === "base64"
        ? bytesAsRstream(Buffer.from(message.body, "base64"))
        : message.body
      expect(rstream).toEqual({
        body,
        value: message.amqpValue ?? null,
        sequence: message.amqpSequence ?? null,
        header: message.header ?? null,
        properties: message.properties === undefined
          ? null
          : Object.fromEntries(Object.entries(message.properties).map(([k, v]) => [snake(k), propertyAsRstream(k, v)])),
        applicationProperties: record(message.applicationProperties),
        messageAnnotations: message.filterValue === undefined
          ? record(message.messageAnnotations)
          : { ...record(message.messageAnnotations), "x-stream-filter-value": message.filterValue }
      })
    })
  }
})

describe("messages as JSON lines (receive --json, send --json)", () => {
  it("every field and type survives JSON both ways", () => {
    for (const name of Object.keys(fixtures)) {
      const original = decoded(hex(fixtures[name]!))
      const json = JSON.parse(JSON.stringify(messageToJson(original)))
      const again = decoded(encodeMessage(Either.getOrThrow(messageFromJson(json))))
      expect({ ...again, offset: original.offset }).toEqual(original)
    }
  })

  it("the types JSON lacks are one-key objects; the rest is plain", () => {
    const json = messageToJson(decoded(hex(fixtures["every-simple-type"]!), 7n))
    expect(json).toMatchObject({
      offset: "7",
      body: "types",
      applicationProperties: {
        small: 5,
        long: { long: 1099511627776 },
        double: 3.5,
        binary: { binary: "AAH/" },
        uuid: { uuid: "12345678-1234-5678-9abc-def012345678" },
        timestamp: { timestamp: "2026-12-02T03:24:31.500Z" }
      }
    })
    expect(messageToJson({ offset: 0n, body: bytes(0xff) })).toEqual({ offset: "0", body: "/w==", encoding: "base64" })
    expect(messageToJson({ offset: 0n, body: bytes(), applicationProperties: { u: Amqp.ulong(2n ** 64n - 1n) } }).applicationProperties)
      .toEqual({ u: { ulong: "18446744073709551615" } })
  })

  it("what is not a message is refused naming the field", () => {
    const refusal = (json: unknown) => Either.match(messageFromJson(json), { onLeft: (e) => e.message, onRight: () => "accepted" })
    expect(refusal([])).toMatch(/^the line: expected a JSON object/)
    expect(refusal({})).toMatch(/^body: missing/)
    expect(refusal({ body: "a", extra: 1 })).toMatch(/^extra: unknown field/)
    expect(refusal({ body: "a", encoding: "hex" })).toMatch(/^encoding: expected "base64"/)
    expect(refusal({ body: "@@", encoding: "base64" })).toMatch(/^body: expected base64/)
    expect(refusal({ body: "a", properties: { messageId: 5 } })).toMatch(/^properties.messageId: expected a string/)
    expect(refusal({ body: "a", properties: { creationTime: "yesterday" } })).toMatch(/^properties.creationTime: expected an ISO date/)
    expect(refusal({ body: "a", properties: { colour: "red" } })).toMatch(/^properties.colour: unknown field/)
    expect(refusal({ body: "a", applicationProperties: { n: { long: "x" } } })).toMatch(/^applicationProperties.n.long: expected an integer/)
    expect(refusal({ body: "a", applicationProperties: { n: { what: 1 } } })).toMatch(/^applicationProperties.n: expected a JSON value or an object with one key naming an AMQP type/)
    expect(refusal({ body: "a", applicationProperties: { n: { ubyte: 256 } } })).toMatch(/a ubyte must be an integer from 0 to 255/)
    expect(refusal({ body: "a", filterValue: "" })).toMatch(/filter value must be a non-empty string/)
  })
})

describe("from a review: what must not crash, loop or lie", () => {
  it("arrays of described values, and what an array cannot hold", () => {
    const value = Amqp.array([Amqp.described(Amqp.symbol("x"), 1), Amqp.described(Amqp.symbol("x"), 2)])
    expect(decoded(encodeMessage({ body: "", applicationProperties: { a: value } })).applicationProperties).toEqual({ a: value })
    for (const bad of [
      Amqp.array([Amqp.described(Amqp.symbol("x"), 1), Amqp.described(Amqp.symbol("y"), 1)]),
      Amqp.array([Amqp.symbol("\u00e9")]),
      Amqp.array([Amqp.ulong(-1n)]),
      Amqp.array([null, null])
    ]) expect(() => encodeMessage({ body: "", applicationProperties: { a: bad } })).toThrow()
  })

  it("a count no bytes can hold (an array of zero-width elements) is undecodable, not a process that runs out of memory", () => {
    const m = decodeMessage(hex("005374 c1 0e 02 a101 61 f0 00000005 ffffffff 40 005375a000"), 0n)
    expect(m).toBeInstanceOf(UndecodableMessage)
    expect((m as UndecodableMessage).reason).toMatch(/counts 4294967295 elements in 1 bytes/)
  })

  it("a gzip batch that inflates beyond what it says it holds is undecodable", () => {
    const bomb = gzipSync(Buffer.alloc(10_000_000))
    const entry = Buffer.alloc(11)
    entry.writeUInt8(0x80 | (1 << 4))
    entry.writeUInt16BE(1, 1)
    entry.writeUInt32BE(100, 3)
    entry.writeUInt32BE(bomb.length, 7)
    const { messages } = decodeDeliver(deliverFrame(0n, [Buffer.concat([entry, bomb])], 1))
    expect(messages).toHaveLength(1)
    expect((messages[0] as UndecodableMessage).reason).toMatch(/cannot decompress a gzip sub-entry batch/)
  })

  it("a timestamp beyond a Date's range stays a number of milliseconds, in JSON too", () => {
    const m = decoded(hex("005374 c1 0d 02 a101 74 83 7fffffffffffffff 005375a000"))
    expect(m.applicationProperties).toEqual({ t: { _tag: "timestamp", value: 2n ** 63n - 1n } })
    const json = JSON.parse(JSON.stringify(messageToJson(m)))
    expect(json.applicationProperties).toEqual({ t: { timestamp: "9223372036854775807" } })
    expect(decoded(encodeMessage(Either.getOrThrow(messageFromJson(json)))).applicationProperties).toEqual(m.applicationProperties)
  })

  it("JSON keys of Object.prototype are refused like any unknown key; the largest safe integers round-trip", () => {
    const refused = (json: unknown) => Either.isLeft(messageFromJson(json))
    expect(refused({ body: "a", applicationProperties: { a: { toString: 1 } } })).toBe(true)
    expect(refused({ body: "a", hasOwnProperty: 1 })).toBe(true)
    expect(refused({ body: "a", properties: { constructor: 1 } })).toBe(true)
    expect(refused({ body: "a", header: { toString: 1 } })).toBe(true)
    for (const n of [2n ** 53n - 1n, -(2n ** 53n - 1n), 2n ** 53n, 2n ** 63n - 1n]) {
      const m = decoded(encodeMessage({ body: "", applicationProperties: { n } }))
      const back = Either.getOrThrow(messageFromJson(JSON.parse(JSON.stringify(messageToJson(m)))))
      expect(back.applicationProperties).toEqual({ n })
    }
  })

  it("an unknown section code, also as a smallulong, is undecodable", () => {
    expect(decodeMessage(hex("00531040005375a000"), 0n)).toBeInstanceOf(UndecodableMessage)
  })
})
