/**
 * What the subcommands (send.ts, receive.ts, offset.ts, put together by main.ts) share: flag specs
 * turned into @effect/cli options, environment fallbacks, the connection and offset-store layers,
 * one-line errors with exit codes, the stop signal, the progress line, and a `runMain` that runs
 * finalizers on SIGINT/SIGTERM on Node, Bun and Deno alike. No business logic: that is in
 * StreamOffsets.ts.
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as PlatformRuntime from "@effect/platform/Runtime"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import { Cause, Config, Data, Deferred, Duration, Effect, Either, Exit, Layer, Logger, LogLevel, Option, Redacted, type Scope } from "effect"
import * as fs from "node:fs"
import process from "node:process"
import { DEFAULT_URI, OffsetStore, parseUri, redactUri, retryFor, StreamBroker } from "./StreamOffsets.ts"

/** Exit codes of every command. */
export const ExitCode = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const

/** A usage error: unknown flag, missing or malformed value. Exit code 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

export interface FlagSpec {
  readonly [flag: string]: {
    readonly env?: string
    readonly help: string
    readonly default?: string
    /** A switch: takes no value; present means "true". */
    readonly boolean?: true
    /** May be given several times: the values reach `run` as a JSON array (read them with `repeatedFlag`). */
    readonly repeated?: true
  }
}

/** The values of a `repeated` flag, in order (none when it was not given). */
export const repeatedFlag = (value: string | undefined): ReadonlyArray<string> =>
  value === undefined ? [] : (JSON.parse(value) as ReadonlyArray<string>)

/**
 * Reads flags: the flag, else its environment variable, else its default (undefined when none).
 * Flags with a default always have a value.
 */
export const flagReader = <S extends FlagSpec>(spec: S, values: Partial<Record<keyof S, string>>) =>
(name: keyof S & string): Effect.Effect<string | undefined> => {
  const given = values[name]
  if (given !== undefined) return Effect.succeed(given)
  const { env, default: fallback } = spec[name]!
  return Effect.map(envValue(env), (value) => Option.getOrUndefined(value) ?? fallback)
}

/** An environment variable's value; an empty one (`MESSAGE_COUNT=`) is no value. */
const envValue = (env: string | undefined): Effect.Effect<Option.Option<string>> =>
  env === undefined
    ? Effect.succeed(Option.none())
    : Config.option(Config.string(env)).pipe(
      Effect.orElseSucceed(() => Option.none<string>()),
      Effect.map(Option.filter((value) => value !== ""))
    )

/** What an error about a value names: its flag, or the environment variable it came from. */
export const sourceOf = <S extends FlagSpec>(
  spec: S,
  values: Partial<Record<keyof S, string>>,
  name: keyof S & string
): Effect.Effect<string> => {
  const env = spec[name]!.env
  if (values[name] !== undefined || env === undefined) return Effect.succeed(`--${name}`)
  return Effect.map(envValue(env), (value) => (Option.isSome(value) ? env : `--${name}`))
}

/** Which runtime runs this: shown by --help. */
const runtimeName = (): string => {
  const versions = process.versions as Record<string, string | undefined>
  return versions["bun"] ? `Bun ${versions["bun"]}` : versions["deno"] ? `Deno ${versions["deno"]}` : `Node ${process.version}`
}

/** A positive integer, or a usage error naming where it came from (`--count`, `MESSAGE_COUNT`). */
export const positiveInteger = (label: string, value: string): Effect.Effect<number, UsageError> =>
  /^[0-9]+$/.test(value) && Number(value) > 0 && Number.isSafeInteger(Number(value))
    ? Effect.succeed(Number(value))
    : Effect.fail(new UsageError({ message: `${label} must be a positive integer, got "${value}"` }))

/** `--stream`, with the help text of the command. */
export const streamFlag = (help: string) =>
  ({ stream: { env: "RABBITMQ_STREAM_NAME", help, default: "stream-offset-tracking" } }) as const satisfies FlagSpec

/** `--name`, the consumer's offset-tracking reference, with the help text of the command. */
export const consumerNameFlag = (help: string) =>
  ({ name: { env: "RABBITMQ_STREAM_CONSUMER_NAME", help, default: "offset-tracking-tutorial" } }) as const satisfies
    FlagSpec

/** The connection flags every command has. */
export const connectionFlags = {
  uri: {
    env: "RABBITMQ_STREAM_URI",
    help:
      `broker URI, rabbitmq-stream://user:pass@host:5552/vhost, or rabbitmq-stream+tls://...:5551/vhost for TLS; several nodes: user:pass@h1:5552,h2:5552/vhost (default ${
        redactUri(DEFAULT_URI)
      })`
  },
  "retry-for": {
    env: "RABBITMQ_STREAM_RETRY_FOR",
    help: "wait out a broker that is away (restart, node loss, not started yet) this long before failing; 0s: never",
    default: "2m"
  },
  ca: {
    env: "RABBITMQ_STREAM_CA",
    help: "TLS (rabbitmq-stream+tls://): PEM file of the CA that signed the broker's certificate (default: the system's CAs)"
  },
  cert: { env: "RABBITMQ_STREAM_CERT", help: "TLS: PEM file of a client certificate, for brokers that require one" },
  key: { env: "RABBITMQ_STREAM_KEY", help: "TLS: PEM file of the key of --cert" },
  "insecure-skip-verify": {
    help: "TLS: accept any broker certificate, verifying nothing (a warning on every connect)",
    boolean: true
  },
  "load-balancer": {
    help:
      "the --uri hosts are load balancers in front of the cluster: every connection goes through them (one that lands on the wrong node is tried again); the nodes' advertised hosts need not be reachable",
    boolean: true
  },
  sasl: {
    env: "RABBITMQ_STREAM_SASL",
    help:
      "how to authenticate: plain (the user and password of --uri) or external (TLS: the client certificate of --cert is the identity; the broker needs rabbitmq_auth_mechanism_ssl); default: the URI's ?auth_mechanism=, else plain"
  }
} as const satisfies FlagSpec

/** The broker layer for the connection flags (else their env variables, else defaults); checked now. */
export const brokerLayer = (values: Partial<Record<keyof typeof connectionFlags, string>>) =>
  Effect.gen(function*() {
    const get = flagReader(connectionFlags, values)
    const config = yield* Either.mapLeft(
      parseUri((yield* get("uri")) ?? DEFAULT_URI),
      (e) => new UsageError({ message: e.message })
    )
    const retry = yield* durationFlag(yield* sourceOf(connectionFlags, values, "retry-for"), (yield* get("retry-for")) ?? "2m", {
      zero: true
    })
    const [ca, cert, key] = [yield* get("ca"), yield* get("cert"), yield* get("key")]
    const insecureSkipVerify = values["insecure-skip-verify"] === "true"
    const loadBalancer = values["load-balancer"] === "true"
    const sasl = (yield* get("sasl"))?.toLowerCase() ?? config.sasl
    if (sasl !== undefined && sasl !== "plain" && sasl !== "external") {
      return yield* new UsageError({ message: `${yield* sourceOf(connectionFlags, values, "sasl")} must be plain or external, got "${sasl}"` })
    }
    if (sasl === "external" && (config.tls === undefined || cert === undefined)) {
      return yield* new UsageError({
        message: "--sasl external takes the TLS client certificate as the identity: use a rabbitmq-stream+tls:// URI with --cert and --key"
      })
    }
    if (config.tls === undefined) {
      if (ca !== undefined || cert !== undefined || key !== undefined || insecureSkipVerify) {
        return yield* new UsageError({
          message: "--ca, --cert, --key and --insecure-skip-verify are for TLS: use a rabbitmq-stream+tls:// URI"
        })
      }
      return StreamBroker.layer({ ...config, retry: retryFor(retry), ...(loadBalancer ? { loadBalancer } : {}) })
    }
    if ((cert === undefined) !== (key === undefined)) {
      return yield* new UsageError({ message: "--cert and --key go together (a client certificate and its key)" })
    }
    const pem = (name: "ca" | "cert" | "key", file: string) =>
      Effect.flatMap(sourceOf(connectionFlags, values, name), (label) => readPem(label, file))
    const tls = {
      ca: ca === undefined ? undefined : yield* pem("ca", ca),
      cert: cert === undefined ? undefined : yield* pem("cert", cert),
      key: key === undefined ? undefined : Redacted.make(yield* pem("key", key)),
      insecureSkipVerify
    }
    return StreamBroker.layer({
      ...config,
      retry: retryFor(retry),
      tls,
      ...(sasl === undefined ? {} : { sasl }),
      ...(loadBalancer ? { loadBalancer } : {})
    })
  })

/** A PEM file; unreadable or not PEM is a usage error naming where it came from (`--ca`, `RABBITMQ_STREAM_CA`). */
const readPem = (label: string, file: string): Effect.Effect<string, UsageError> =>
  Effect.try({
    try: () => fs.readFileSync(file, "utf8"),
    catch: (e) =>
      new UsageError({ message: `cannot read ${label} ${file}: ${(e as { code?: string }).code ?? String(e)}` })
  }).pipe(
    Effect.filterOrFail(
      (text) => text.includes("-----BEGIN "),
      () => new UsageError({ message: `${label} ${file} is not a PEM file (no "-----BEGIN" line)` })
    )
  )

/** Turns the outcome of a command into one line on stderr and an exit code. */
const report = <A, E>(exit: Exit.Exit<A, E>): number => {
  if (Exit.isSuccess(exit)) return ExitCode.ok
  if (Cause.isInterruptedOnly(exit.cause)) return ExitCode.interrupted
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const error = failure.value as { readonly _tag?: string; readonly message?: string }
    stderrLine(`error: ${redactUri(withFlagHint(error._tag, error.message ?? String(error)))}`)
    return error._tag === "UsageError" || error._tag === "InvalidArgument" ? ExitCode.usage : ExitCode.failure
  }
  const defect = Cause.squash(exit.cause)
  stderrLine(`internal error: ${redactUri(defect instanceof Error ? defect.message : String(defect))}`)
  return ExitCode.failure
}

/** The library's errors name its options; on the command line, what to do names the flags. */
const withFlagHint = (tag: string | undefined, message: string): string =>
  tag === "StreamNotFound"
    ? `${message}: run send first, or check --stream`
    : tag === "SuperStreamNotFound"
    ? `${message}: send to it first, or check --super-stream`
    : tag === "SuperStreamMismatch"
    ? message.replace(/\((\d+) partitions\)/, "(--partitions $1)")
    : message

/** An offset for people: the number, or "none". */
export const showOffset: (offset: Option.Option<bigint>) => string = Option.match({
  onNone: () => "none",
  onSome: (offset: bigint) => offset.toString()
})

let gracefulStop: (() => void) | undefined
let stdoutClosed = false

/**
 * The last resort that keeps every command responsive to signals: the library bounds each wait
 * (a graceful stop takes at most about 10 s, an interruption less), and if anything still holds
 * the process past these deadlines it exits anyway, saying so.
 */
const STOP_DEADLINE = Duration.seconds(20)
const SAME_SIGNAL_WITHIN_MS = 1000
const INTERRUPT_DEADLINE = Duration.seconds(5)
const deadline = (after: Duration.Duration, code: number) =>
  setTimeout(() => {
    stderrLine(`error: did not stop within ${Duration.format(after)} of the signal; exiting`)
    process.exit(code)
  }, Duration.toMillis(after)).unref()

/**
 * For the scope's lifetime, the first SIGINT/SIGTERM completes the returned effect instead of
 * interrupting the command (a second signal still interrupts).
 */
export const stopSignal: Effect.Effect<Effect.Effect<void>, never, Scope.Scope> = Effect.acquireRelease(
  Effect.map(Deferred.make<void>(), (signalled) => {
    gracefulStop = () => Deferred.unsafeDone(signalled, Exit.void)
    return Deferred.await(signalled)
  }),
  () => Effect.sync(() => void (gracefulStop = undefined))
)

/**
 * For the scope's lifetime, when stderr is a terminal: one line on stderr, rewritten every second,
 * with the count, the rate and the time so far; erased at the end. Nothing when stderr is a pipe
 * or a file.
 */
export const progress = (what: string, count: () => number): Effect.Effect<void, never, Scope.Scope> => {
  if (!process.stderr.isTTY) return Effect.void
  const started = Date.now()
  const line = () => {
    const seconds = (Date.now() - started) / 1000
    const n = count()
    process.stderr.write(`\r\x1b[K${n.toLocaleString("en")} ${what}, ${Math.round(n / Math.max(seconds, 0.001)).toLocaleString("en")}/s, ${seconds.toFixed(0)}s`)
    progressShown = true
  }
  return Effect.acquireRelease(
    Effect.sync(() => setInterval(line, 1000)),
    (timer) => Effect.sync(() => {
      clearInterval(timer)
      eraseProgress()
    })
  ).pipe(Effect.asVoid)
}

/** Whether the progress line is on the screen now (it has no newline: other lines must erase it first). */
let progressShown = false
const eraseProgress = () => {
  if (progressShown) process.stderr.write("\r\x1b[K")
  progressShown = false
}

/** One line on stderr, over the progress line if one is shown (the next tick draws it again below). */
const stderrLine = (line: string) => {
  eraseProgress()
  process.stderr.write(`${line}\n`)
}

/** "500ms", "5s", "2m", "1h"; longer than 0 unless `zero` is allowed (it means "never" somewhere). */
export const durationFlag = (
  label: string,
  value: string,
  options: { readonly zero?: boolean } = {}
): Effect.Effect<Duration.Duration, UsageError> => {
  const match = /^([0-9]+)(ms|s|m|h)$/.exec(value.trim())
  if (!match) return Effect.fail(new UsageError({ message: `${label} must be a duration such as 500ms, 5s, 2m or 1h, got "${value}"` }))
  const n = Number(match[1])
  if (n === 0 && !options.zero) return Effect.fail(new UsageError({ message: `${label} must be longer than 0, got "${value}"` }))
  const unit = match[2]
  return Effect.succeed(
    unit === "ms" ? Duration.millis(n) : unit === "s" ? Duration.seconds(n) : unit === "m" ? Duration.minutes(n) : Duration.hours(n)
  )
}

/** `--offset-store`: `server` (the broker's own tracking) or `file:DIR` (a KeyValueStore on disk). */
export const offsetStoreFlag = {
  "offset-store": { help: "where offsets are kept: server, or file:DIR", default: "server" }
} as const satisfies FlagSpec

/** A `file:DIR` offset store that cannot be used: one line, exit 1. */
export class OffsetStoreUnavailable extends Data.TaggedError("OffsetStoreUnavailable")<{ readonly message: string }> {}

/**
 * The offset store of `--offset-store`. `readOnly` (the `offset` command): a `file:DIR` that does
 * not exist is not created, it is a usage error.
 */
export const offsetStoreLayer = (value: string | undefined, options: { readonly readOnly?: boolean } = {}) => {
  const choice = value ?? "server"
  if (choice === "server") return Effect.succeed(OffsetStore.layerServer)
  if (choice.startsWith("file:") && choice.length > 5) {
    const dir = choice.slice(5)
    if (options.readOnly && !fs.existsSync(dir)) {
      return Effect.fail(new UsageError({ message: `--offset-store ${choice}: the directory ${dir} does not exist` }))
    }
    return Effect.succeed(
      OffsetStore.layerKeyValueStore.pipe(
        Layer.provide(KeyValueStore.layerFileSystem(dir)),
        Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer)),
        Layer.mapError((e) =>
          new OffsetStoreUnavailable({ message: `cannot use --offset-store ${choice}: ${e.message.split("\n")[0]}` })
        )
      )
    )
  }
  return Effect.fail(new UsageError({ message: `--offset-store must be "server" or "file:DIR", got "${choice}"` }))
}

/**
 * Runs a command: SIGINT/SIGTERM interrupt it (finalizers run: consumers close, offsets are stored),
 * errors become one line, and the process exits with the command's exit code.
 */
const runMainWith = PlatformRuntime.makeRunMain(({ fiber }) => {
  // Keep the process alive while the program waits on the network or on timers.
  const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
  let firstSignalAt: number | undefined
  const onSignal = () => {
    // In a terminal, Ctrl-C reaches the program twice under `bun run` and `deno task` (the
    // terminal signals the process group, and the runner forwards its own copy): signals within
    // a second of the first are that same Ctrl-C, not a second one.
    const now = Date.now()
    if (firstSignalAt !== undefined && now - firstSignalAt < SAME_SIGNAL_WITHIN_MS) return
    firstSignalAt ??= now
    // A command that asked for a graceful stop gets the first signal; a second one interrupts.
    const stop = gracefulStop
    gracefulStop = undefined
    if (stop) {
      stop()
      deadline(STOP_DEADLINE, ExitCode.failure)
    } else {
      fiber.unsafeInterruptAsFork(fiber.id())
      deadline(INTERRUPT_DEADLINE, ExitCode.interrupted)
    }
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  // The reader of stdout went away (`receive --print | head -n 5`): stop as on a signal (the offset
  // of what was written is stored), without a stack trace.
  const onStdoutError = (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") return stderrLine(`error: cannot write to stdout: ${error.message}`)
    if (stdoutClosed) return
    stdoutClosed = true
    stderrLine("stdout was closed by its reader; stopping")
    // A graceful stop if the command has one (never an interruption of a stop under way).
    const stop = gracefulStop
    gracefulStop = undefined
    if (stop) stop()
    else if (firstSignalAt === undefined) fiber.unsafeInterruptAsFork(fiber.id())
  }
  process.stdout.on("error", onStdoutError)
  fiber.addObserver((exit) => {
    gracefulStop = undefined
    clearInterval(keepAlive)
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    flushThenExit(report(exit))
  })
})

/**
 * Exits once what was written to stdout and stderr is out: a pipe's writes can still be queued
 * (process.exit would drop them). Bounded, for a reader that stopped reading.
 */
const FLUSH_DEADLINE_MS = 10_000
const flushThenExit = (code: number) => {
  process.exitCode = code
  const exit = () => process.exit(code)
  if (stdoutClosed) return void process.stderr.write("", exit)
  setTimeout(exit, FLUSH_DEADLINE_MS).unref()
  process.stdout.write("", () => process.stderr.write("", exit))
}

/** What the library logs (reconnects, warnings): one line each on stderr ("warning: ...", "info: ..."). */
const stderrLogger = Logger.make(({ logLevel, message }) => {
  const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
  stderrLine(`${logLevel.label === "WARN" ? "warning" : logLevel.label.toLowerCase()}: ${redactUri(text)}`)
})

export const runMain = <E, A>(program: Effect.Effect<A, E>): void =>
  runMainWith(
    program.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, stderrLogger)),
      Logger.withMinimumLogLevel(LogLevel.Info)
    ),
    { disableErrorReporting: true, disablePrettyLogger: true }
  )

/**
 * A subcommand for @effect/cli, from a flag spec: every flag is an optional text option (or a
 * switch), described with its environment variable and default; the values reach `run` as given
 * on the command line, and `flagReader` applies the environment and defaults (so flags win).
 */
export const command = <S extends FlagSpec, E, const Name extends string>(
  name: Name,
  summary: string,
  spec: S,
  run: (flags: Partial<Record<keyof S, string>>) => Effect.Effect<void, E, Scope.Scope>
): Command.Command<Name, never, E | UsageError, unknown> => {
  const options: Record<string, Options.Options<Option.Option<string>>> = {}
  for (const [flag, { env, help, default: fallback, boolean, repeated }] of Object.entries(spec)) {
    if (!boolean) flagsWithValues.add(flag)
    const extra = [env ? `env ${env}` : undefined, fallback !== undefined ? `default ${fallback}` : undefined]
      .filter(Boolean)
    const description = `${help}${extra.length ? ` (${extra.join(", ")})` : ""}`
    const option = boolean
      ? Options.boolean(flag).pipe(Options.map((on) => (on ? Option.some("true") : Option.none())))
      : repeated
      ? Options.text(flag).pipe(
        Options.repeated,
        Options.map((all) => (all.length === 0 ? Option.none() : Option.some(JSON.stringify(all))))
      )
      : Options.optional(Options.text(flag))
    options[flag] = Options.withDescription(option, description)
  }
  return Command.make(name, options, (parsed) => {
    const values: Partial<Record<keyof S, string>> = {}
    for (const [flag, value] of Object.entries(parsed)) {
      if (Option.isSome(value as Option.Option<string>)) values[flag as keyof S] = (value as Option.Some<string>).value
    }
    return Effect.scoped(run(values))
  }).pipe(Command.withDescription(summary)) as unknown as Command.Command<Name, never, E | UsageError, unknown>
}

/** The one command, `stream-offsets send|receive|offset`, with `--help`, `--version` and completions. */
export const runCli = <Name extends string, E, A>(root: Command.Command<Name, never, E, A>, version: string): void => {
  const cli = Command.run(root, { name: `stream-offsets (effect-stream-offsets on ${runtimeName()})`, version })
  runMain(
    cli(process.argv).pipe(
      // Its parse errors are printed by @effect/cli as help text (several lines): we print one
      // line instead (see `report`), so its own printing goes nowhere.
      Effect.catchIf(ValidationError.isValidationError, (e) =>
        Effect.fail(new UsageError({ message: usageLine(e) }))),
      Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)),
      (program) => Effect.consoleWith((console) => Effect.withConsole(program, { ...console, error: () => Effect.void }))
    )
  )
}

/** The flags that take a value, of every command: a known one that @effect/cli reports as unknown lacks its value. */
const flagsWithValues = new Set<string>()

/** One line for a parse error of @effect/cli, pointing at --help. */
const usageLine = (error: ValidationError.ValidationError): string => {
  const text: string = "error" in error ? HelpDoc.toAnsiText(error.error) : ""
  const first = text.replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((line: string) => line.trim()).find((line: string) => line !== "")
  const unknown = /^Received unknown argument: '(.*)'$/.exec(first ?? "")
  if (unknown) {
    const flag = /^--([a-z][a-z-]*)$/.exec(unknown[1]!)?.[1]
    if (flag !== undefined && flagsWithValues.has(flag)) return `--${flag} needs a value (see --help)`
    return flag !== undefined ? `unknown flag --${flag} (see --help)` : `unexpected argument "${unknown[1]}" (see --help)`
  }
  return `${first ?? "invalid command line"} (see --help)`
}

/** A status line on stderr (not through Console.error, which @effect/cli's printing uses). */
export const statusLine = (line: string): Effect.Effect<void> => Effect.sync(() => stderrLine(line))

/**
 * A line of data on stdout, with backpressure: when the reader is slower than the consumer (a pipe
 * into a slow program), writing waits for it instead of piling lines up in memory, where lines
 * still queued at the exit would be lost.
 */
export const dataLine = (line: string): Effect.Effect<void> =>
  Effect.suspend(() =>
    process.stdout.write(`${line}\n`) ? Effect.void : Effect.async<void>((resume) => {
      const drained = () => resume(Effect.void)
      process.stdout.once("drain", drained)
      return Effect.sync(() => void process.stdout.off("drain", drained))
    })
  )
