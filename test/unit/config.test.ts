import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import { ConnectionConfig, describeConnection, parseUri, redactUri } from "../../src/StreamOffsets.ts"
import { parseFlags } from "../../src/cli.ts"

describe("connection URI", () => {
  it("parses user, password, host, port and an encoded vhost", () => {
    const config = Either.getOrThrow(parseUri("rabbitmq-stream://alice:s%40cret@broker:5553/%2f"))
    expect(config).toMatchObject({ endpoints: [{ host: "broker", port: 5553 }], username: "alice", vhost: "/" })
    expect(Redacted.value(config.password)).toBe("s@cret")
    expect(describeConnection(config)).toBe("rabbitmq-stream://alice@broker:5553/%2F")
  })

  it("defaults the port to 5552 and an empty path to vhost /", () => {
    const config = Either.getOrThrow(parseUri("rabbitmq-stream://guest:guest@localhost"))
    expect(config.endpoints).toEqual([{ host: "localhost", port: 5552 }])
    expect(config.vhost).toBe("/")
  })

  it("takes several nodes, IPv6 literals included, and describes them without the password", () => {
    const config = Either.getOrThrow(parseUri("rabbitmq-stream://u:secret@h1:5561,h2,[::1]:5563/%2f"))
    expect(config.endpoints).toEqual([
      { host: "h1", port: 5561 },
      { host: "h2", port: 5552 },
      { host: "::1", port: 5563 }
    ])
    expect(describeConnection(config)).toBe("rabbitmq-stream://u@h1:5561,h2:5552,[::1]:5563/%2F")
  })

  it("refuses a malformed node list or port, one line, without the password", () => {
    for (const uri of ["rabbitmq-stream://u:secret@h1:5561,,h2/", "rabbitmq-stream://u:secret@h1:99999/", "rabbitmq-stream://u:secret@h1:x/"]) {
      const error = Either.flip(parseUri(uri)).pipe(Either.getOrThrow)
      expect(error.message).toContain("malformed host")
      expect(error.message).not.toContain("secret")
    }
  })

  it("a user without a password, and no user at all (guest)", () => {
    expect(Redacted.value(Either.getOrThrow(parseUri("rabbitmq-stream://bob@h/")).password)).toBe("")
    const guest = Either.getOrThrow(parseUri("rabbitmq-stream://h"))
    expect([guest.username, Redacted.value(guest.password)]).toEqual(["guest", "guest"])
  })

  it("never puts the password into an error or a printed URI", () => {
    const error = Either.flip(parseUri("amqp://bob:hunter2@host/")).pipe(Either.getOrThrow)
    expect(error.message).not.toContain("hunter2")
    expect(error.message).toContain("rabbitmq-stream://")
    expect(redactUri("rabbitmq-stream://bob:hunter2@host:5552/v")).toBe("rabbitmq-stream://bob:***@host:5552/v")
    expect(String(Either.getOrThrow(parseUri("rabbitmq-stream://bob:hunter2@h")).password)).not.toContain("hunter2")
  })

  it.effect("is read from RABBITMQ_STREAM_URI", () =>
    Effect.gen(function*() {
      const config = yield* ConnectionConfig.fromEnv
      expect(config.endpoints[0]?.host).toBe("elsewhere")
    }).pipe(Effect.withConfigProvider(
      ConfigProvider.fromMap(new Map([["RABBITMQ_STREAM_URI", "rabbitmq-stream://u:p@elsewhere:1/x"]]))
    )))
})

describe("CLI flags", () => {
  const spec = { stream: { help: "" }, count: { help: "" } }
  it("reads --flag value and --flag=value", () => {
    expect(Either.getOrThrow(parseFlags(["--stream", "a", "--count=3"], spec)).values).toEqual({
      stream: "a",
      count: "3"
    })
  })
  it("refuses unknown flags and missing values", () => {
    expect(Either.flip(parseFlags(["--nope"], spec)).pipe(Either.getOrThrow).message).toBe(
      "unknown flag --nope (see --help)"
    )
    expect(Either.flip(parseFlags(["--stream"], spec)).pipe(Either.getOrThrow).message).toBe(
      "--stream needs a value (see --help)"
    )
  })
})
