import { describe, expect, it } from "@effect/vitest"
import * as CliConfig from "@effect/cli/CliConfig"
import * as Options from "@effect/cli/Options"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { ConfigProvider, Duration, Effect, Either, Layer, Redacted } from "effect"
import { ConnectionConfig, describeConnection, parseUri, redactUri, StreamBroker } from "../../src/StreamOffsets.ts"
import { brokerLayer, connectionFlags, optionsOf } from "../../src/cli.ts"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

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

  it("reads ?auth_mechanism=external (TLS only) and refuses other parameters, without the password", () => {
    const config = Either.getOrThrow(parseUri("rabbitmq-stream+tls://u:secret@h1:5541/%2f?auth_mechanism=EXTERNAL"))
    expect(config).toMatchObject({ sasl: "external", tls: {}, endpoints: [{ host: "h1", port: 5541 }] })
    expect(describeConnection(config)).toBe("rabbitmq-stream+tls://h1:5541/%2F?auth_mechanism=external")
    expect(Either.getOrThrow(parseUri("rabbitmq-stream://u:p@h/?auth_mechanism=plain")).sasl).toBe("plain")
    expect(Either.getOrThrow(parseUri("rabbitmq-stream://u:p@h/")).sasl).toBeUndefined()
    for (
      const [uri, why] of [
        ["rabbitmq-stream://u:secret@h/?auth_mechanism=external", "which takes TLS"],
        ["rabbitmq-stream+tls://u:secret@h/?auth_mechanism=kerberos", "unknown parameter"],
        ["rabbitmq-stream+tls://u:secret@h/?heartbeat=5", "unknown parameter"]
      ] as const
    ) {
      const error = Either.flip(parseUri(uri)).pipe(Either.getOrThrow)
      expect(error.message).toContain(why)
      expect(error.message).not.toContain("secret")
    }
  })

  it.effect("SASL EXTERNAL without a client certificate fails the layer at once, before connecting", () =>
    Effect.gen(function*() {
      const config = Either.getOrThrow(parseUri("rabbitmq-stream+tls://localhost:1/?auth_mechanism=external"))
      const error = yield* Effect.flip(Effect.scoped(Layer.build(StreamBroker.layer(config))))
      expect(error).toMatchObject({ _tag: "ConnectionError", retryable: false })
      expect(error.message).toContain("give tls.cert and tls.key")
    }))

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

describe("TLS URIs and flags", () => {
  it("rabbitmq-stream+tls:// turns TLS on (verification on) with default port 5551, several nodes too", () => {
    const one = Either.getOrThrow(parseUri("rabbitmq-stream+tls://u:p@broker/%2f"))
    expect(one.tls).toEqual({})
    expect(one.endpoints).toEqual([{ host: "broker", port: 5551 }])
    expect(describeConnection(one)).toBe("rabbitmq-stream+tls://u@broker:5551/%2F")
    const many = Either.getOrThrow(parseUri("rabbitmq-stream+tls://u:p@a:6000,b/%2f"))
    expect(many.endpoints).toEqual([{ host: "a", port: 6000 }, { host: "b", port: 5551 }])
    expect(Either.getOrThrow(parseUri("rabbitmq-stream://u:p@a/")).tls).toBeUndefined()
  })

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tls-flags-"))
  const pem = path.join(dir, "ca.pem")
  fs.writeFileSync(pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
  const notPem = path.join(dir, "notes.txt")
  fs.writeFileSync(notPem, "hello")
  /** The connection flags of a command line (and the environment), as a command's handler receives them. */
  const flags = (args: ReadonlyArray<string>) =>
    Options.processCommandLine(Options.all(optionsOf(connectionFlags)), args, CliConfig.defaultConfig).pipe(
      Effect.orDie,
      Effect.flatMap(([, , parsed]) => Effect.all(parsed)),
      Effect.provide(NodeContext.layer)
    )
  const layer = (args: ReadonlyArray<string>) => Effect.flatMap(flags(args), brokerLayer)
  const usage = (args: ReadonlyArray<string>) => layer(args).pipe(Effect.flip, Effect.map((e) => e.message))

  it.effect("TLS flags: PEM files read, bad ones named, TLS-only flags refused on a plain URI", () =>
    Effect.gen(function*() {
      const tlsUri = "rabbitmq-stream+tls://u:p@localhost/%2f"
      yield* layer(["--uri", tlsUri, "--ca", pem])
      expect(yield* usage(["--uri", "rabbitmq-stream://u:p@localhost/%2f", "--ca", pem])).toContain(
        "are for TLS: use a rabbitmq-stream+tls:// URI"
      )
      expect(yield* usage(["--uri", tlsUri, "--cert", pem])).toBe("--cert and --key go together (a client certificate and its key)")
      expect(yield* usage(["--uri", tlsUri, "--ca", path.join(dir, "missing.pem")])).toContain("cannot read --ca")
      expect(yield* usage(["--uri", tlsUri, "--ca", notPem])).toContain("is not a PEM file")
      expect(yield* usage(["--uri", "rabbitmq-stream://u:p@localhost/%2f", "--insecure-skip-verify"])).toContain("for TLS")
    }))

  it.effect("the CA may come from RABBITMQ_STREAM_CA; a flag wins over it", () =>
    Effect.gen(function*() {
      expect(yield* usage(["--uri", "rabbitmq-stream+tls://u:p@localhost/%2f"])).toContain("cannot read RABBITMQ_STREAM_CA /nope.pem")
      yield* layer(["--uri", "rabbitmq-stream+tls://u:p@localhost/%2f", "--ca", pem])
    }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RABBITMQ_STREAM_CA", "/nope.pem"]])))))

  const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect("a flag wins over its environment variable, which wins over the default; an empty one is no value", () =>
    Effect.gen(function*() {
      const retryFor = (args: ReadonlyArray<string>, env: Record<string, string>) =>
        flags(args).pipe(Effect.map((values) => Duration.toSeconds(values["retry-for"])), withEnv(env))
      expect(yield* retryFor(["--retry-for", "5s"], { RABBITMQ_STREAM_RETRY_FOR: "7s" })).toBe(5)
      expect(yield* retryFor([], { RABBITMQ_STREAM_RETRY_FOR: "7s" })).toBe(7)
      expect(yield* retryFor([], { RABBITMQ_STREAM_RETRY_FOR: "" })).toBe(120)
      expect(yield* retryFor([], {})).toBe(120)
    }))

  it.effect("a bad value is named by where it came from: the flag, or its environment variable", () =>
    Effect.gen(function*() {
      const error = (args: ReadonlyArray<string>, env: Record<string, string>) =>
        flags(args).pipe(Effect.flip, Effect.map((e) => e.message), withEnv(env))
      expect(yield* error([], { RABBITMQ_STREAM_RETRY_FOR: "soon" })).toBe(
        'RABBITMQ_STREAM_RETRY_FOR must be a duration such as 500ms, 5s, 2m or 1h, got "soon"'
      )
      expect(yield* error(["--retry-for", "later"], { RABBITMQ_STREAM_RETRY_FOR: "soon" })).toBe(
        '--retry-for must be a duration such as 500ms, 5s, 2m or 1h, got "later"'
      )
      expect(yield* error(["--sasl", "kerberos"], {})).toBe('--sasl must be plain or external, got "kerberos"')
    }))
})
