/**
 * What the subcommands (send.ts, receive.ts, offset.ts, put together by main.ts) share: typed flags
 * (@effect/cli options with environment fallbacks and defaults, and their docs), the connection and
 * offset-store layers, one-line errors with exit codes, the stop signal, the progress line, and a
 * `runMain` that runs finalizers on SIGINT/SIGTERM on Node, Bun and Deno alike. No business logic:
 * that is in StreamOffsets.ts.
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as PlatformRuntime from "@effect/platform/Runtime"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Command from "@effect/cli/Command"
import * as CliConfig from "@effect/cli/CliConfig"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import type * as HelpDoc from "@effect/cli/HelpDoc"
import type * as Span from "@effect/cli/HelpDoc/Span"
import * as Options from "@effect/cli/Options"
import type * as Usage from "@effect/cli/Usage"
import * as ValidationError from "@effect/cli/ValidationError"
import { Cause, Config, Data, Deferred, Duration, Effect, Either, Exit, HashMap, Layer, Logger, LogLevel, Option, Redacted, RuntimeFlags, type Scope } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import process from "node:process"
import * as EffectRecord from "effect/Record"
import { type ConnectionConfig, DEFAULT_URI, OffsetStore, parseUri, redactUri, retryFor, StreamBroker } from "./StreamOffsets.ts"

/** Exit codes of every command. */
export const ExitCode = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const

/** A usage error: unknown flag, missing or malformed value. Exit code 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** A flag as docs/cli.md's table shows it (scripts/cli-docs.ts generates the table from these). */
export interface FlagDoc {
  readonly env?: string
  readonly help: string
  readonly default?: string
  /** A switch: takes no value; present means "true". */
  readonly boolean?: true
  /** May be given several times. */
  readonly repeated?: true
}

/**
 * A flag: its documentation and its typed @effect/cli option (built for the flag's name). The
 * option's value is the parsed value, or the one-line usage error that names where the bad value
 * came from (`--count`, or `MESSAGE_COUNT` when it came from the environment). It never fails
 * inside @effect/cli: `Effect.all` over a command's values takes the first error, in flag order.
 */
export interface Flag<A> extends FlagDoc {
  readonly option: (name: string) => Options.Options<Either.Either<A, UsageError>>
}

/** The flags of a command, by name. */
export interface Flags {
  readonly [name: string]: Flag<unknown>
}

/**
 * A command's flags as the record of options `Command.make` takes (typed per flag: `Record.map`
 * only knows that every value is an option).
 */
export const optionsOf = <F extends Flags>(flags: F): { readonly [K in keyof F]: ReturnType<F[K]["option"]> } =>
  EffectRecord.map(flags, (flag, name) => flag.option(name)) as { readonly [K in keyof F]: ReturnType<F[K]["option"]> }

/**
 * A subcommand: its flags, the one-line description `--help` shows, and what it does with the
 * flags' values (the first bad value fails it with its UsageError, before `run` starts).
 */
export const subcommand = <F extends Flags, A, E, R>(
  name: string,
  flags: F,
  description: string,
  run: (values: Values<F>) => Effect.Effect<A, E, R>
) =>
  Command.make(
    name,
    optionsOf(flags),
    (parsed) => {
      // Each option's value is its flag's Either (see Flag): typed per flag by `Values<F>`.
      const values = Effect.all(parsed as Readonly<Record<string, Either.Either<unknown, UsageError>>>)
      return Effect.scoped(Effect.flatMap(values as Effect.Effect<Values<F>, UsageError>, run))
    }
  ).pipe(Command.withDescription(description))

/** How a flag's text becomes its value; `source` is what an error names (`--count`, `MESSAGE_COUNT`). */
export type Parse<A> = (text: string, source: string) => Either.Either<A, UsageError>

/** A text given for a flag: on the command line, or in the flag's environment variable. */
interface Given {
  readonly text: string
  readonly source: string
  readonly onCommandLine: boolean
}

const describe = (doc: FlagDoc): string => {
  const extra = [doc.env ? `env ${doc.env}` : undefined, doc.default !== undefined ? `default ${doc.default}` : undefined]
    .filter(Boolean)
  return `${doc.help}${extra.length ? ` (${extra.join(", ")})` : ""}`
}

/** The flag's text, else its environment variable's (an empty one is no value): flags win over env. */
const given = (name: string, doc: FlagDoc): Options.Options<Given> => {
  const flag = Options.text(name).pipe(
    Options.withDescription(describe(doc)),
    Options.map((text): Given => ({ text, source: `--${name}`, onCommandLine: true }))
  )
  const env = doc.env
  return env === undefined
    ? flag
    : Options.withFallbackConfig(flag, Config.map(Config.nonEmptyString(env), (text): Given => ({ text, source: env, onCommandLine: false })))
}

/** A flag with a value and no default: none when neither the flag nor its variable is given. */
export const optionalFlag = <A>(doc: Omit<FlagDoc, "default">, parse: Parse<A>): Flag<Option.Option<A>> => ({
  ...doc,
  option: (name) =>
    Options.optional(given(name, doc)).pipe(Options.map(Option.match({
      onNone: () => Either.right(Option.none()),
      onSome: ({ source, text }) => Either.map(parse(text, source), Option.some)
    })))
})

/** The value of a flag with a default, and whether it was given on the command line (for cross-flag rules). */
export interface Explicit<A> {
  readonly value: A
  readonly onCommandLine: boolean
}

/** A flag with a default, parsed like a given value (so the documented default is the one used). */
export const explicitFlag = <A>(doc: FlagDoc & { readonly default: string }, parse: Parse<A>): Flag<Explicit<A>> => ({
  ...doc,
  option: (name) =>
    given(name, doc).pipe(
      Options.withDefault<Given>({ text: doc.default, source: `--${name}`, onCommandLine: false }),
      Options.map(({ onCommandLine, source, text }) => Either.map(parse(text, source), (value) => ({ value, onCommandLine })))
    )
})

/** A flag with a default. */
export const defaultFlag = <A>(doc: FlagDoc & { readonly default: string }, parse: Parse<A>): Flag<A> => {
  const explicit = explicitFlag(doc, parse)
  return { ...doc, option: (name) => Options.map(explicit.option(name), Either.map(({ value }) => value)) }
}

/** A switch: present means true. */
export const switchFlag = (help: string): Flag<boolean> => ({
  help,
  boolean: true,
  option: (name) => Options.boolean(name).pipe(Options.withDescription(help), Options.map(Either.right))
})

/** A flag that may be given several times: its values in order (none when it was not given). */
export const repeatedFlag = <A>(help: string, parse: Parse<A>): Flag<ReadonlyArray<A>> => ({
  help,
  repeated: true,
  option: (name) =>
    Options.text(name).pipe(
      Options.repeated,
      Options.withDescription(help),
      Options.map((texts) => Either.all(texts.map((text) => parse(text, `--${name}`))))
    )
})

const usage = (message: string) => Either.left(new UsageError({ message }))

/** Any text. */
export const text: Parse<string> = (value) => Either.right(value)

/** A positive integer. */
export const positiveInteger: Parse<number> = (value, source) =>
  /^[0-9]+$/.test(value) && Number(value) > 0 && Number.isSafeInteger(Number(value))
    ? Either.right(Number(value))
    : usage(`${source} must be a positive integer, got "${value}"`)

/** A TCP port to listen on. */
export const port: Parse<number> = (value, source) =>
  /^[0-9]+$/.test(value) && Number(value) >= 1 && Number(value) <= 65535
    ? Either.right(Number(value))
    : usage(`${source} must be a port number from 1 to 65535, got "${value}"`)

/** One of `choices` (`lowercase`: in any case). */
export const choice = <const C extends string>(
  choices: readonly [C, ...ReadonlyArray<C>],
  options: { readonly lowercase?: boolean } = {}
): Parse<C> =>
(value, source) => {
  const chosen = choices.find((c) => c === (options.lowercase ? value.toLowerCase() : value))
  return chosen !== undefined
    ? Either.right(chosen)
    : usage(`${source} must be ${choices.slice(0, -1).join(", ")} or ${choices[choices.length - 1]}, got "${value}"`)
}

/** "500ms", "5s", "2m", "1h"; longer than 0 unless `zero` is allowed (it means "never" somewhere). */
export const duration = (options: { readonly zero?: boolean } = {}): Parse<Duration.Duration> => (value, source) => {
  const match = /^([0-9]+)(ms|s|m|h)$/.exec(value.trim())
  if (!match) return usage(`${source} must be a duration such as 500ms, 5s, 2m or 1h, got "${value}"`)
  const n = Number(match[1])
  if (n === 0 && !options.zero) return usage(`${source} must be longer than 0, got "${value}"`)
  const unit = match[2]
  return Either.right(
    unit === "ms" ? Duration.millis(n) : unit === "s" ? Duration.seconds(n) : unit === "m" ? Duration.minutes(n) : Duration.hours(n)
  )
}

/** Which runtime runs this: shown by --help. */
const runtimeName = (): string => {
  const versions = process.versions as Record<string, string | undefined>
  return versions["bun"] ? `Bun ${versions["bun"]}` : versions["deno"] ? `Deno ${versions["deno"]}` : `Node ${process.version}`
}

/** `--stream`, with the help text of the command (whether it was given decides `--super-stream` rules). */
export const streamFlag = (help: string) => ({
  stream: explicitFlag({ env: "RABBITMQ_STREAM_NAME", help, default: "stream-offset-tracking" }, text)
})

/** `--name`, the consumer's offset-tracking reference, with the help text of the command. */
export const consumerNameFlag = (help: string) => ({
  name: defaultFlag({ env: "RABBITMQ_STREAM_CONSUMER_NAME", help, default: "offset-tracking-tutorial" }, text)
})

/** A PEM file named by a flag (read when the broker layer is made: TLS flags are checked first). */
export interface PemFile {
  readonly path: string
  readonly source: string
}

const pemFile: Parse<PemFile> = (path, source) => Either.right({ path, source })

const connectionUri: Parse<ConnectionConfig> = (uri) =>
  Either.mapLeft(parseUri(uri), (e) => new UsageError({ message: e.message }))

/** The connection flags every command has. */
export const connectionFlags = {
  uri: optionalFlag({
    env: "RABBITMQ_STREAM_URI",
    help:
      `broker URI, rabbitmq-stream://user:pass@host:5552/vhost, or rabbitmq-stream+tls://...:5551/vhost for TLS; several nodes: user:pass@h1:5552,h2:5552/vhost (default ${
        redactUri(DEFAULT_URI)
      })`
  }, connectionUri),
  "retry-for": defaultFlag({
    env: "RABBITMQ_STREAM_RETRY_FOR",
    help: "wait out a broker that is away (restart, node loss, not started yet) this long before failing; 0s: never",
    default: "2m"
  }, duration({ zero: true })),
  ca: optionalFlag({
    env: "RABBITMQ_STREAM_CA",
    help: "TLS (rabbitmq-stream+tls://): PEM file of the CA that signed the broker's certificate (default: the system's CAs)"
  }, pemFile),
  cert: optionalFlag(
    { env: "RABBITMQ_STREAM_CERT", help: "TLS: PEM file of a client certificate, for brokers that require one" },
    pemFile
  ),
  key: optionalFlag({ env: "RABBITMQ_STREAM_KEY", help: "TLS: PEM file of the key of --cert" }, pemFile),
  "insecure-skip-verify": switchFlag("TLS: accept any broker certificate, verifying nothing (a warning on every connect)"),
  "load-balancer": switchFlag(
    "the --uri hosts are load balancers in front of the cluster: every connection goes through them (one that lands on the wrong node is tried again); the nodes' advertised hosts need not be reachable"
  ),
  sasl: optionalFlag({
    env: "RABBITMQ_STREAM_SASL",
    help:
      "how to authenticate: plain (the user and password of --uri) or external (TLS: the client certificate of --cert is the identity; the broker needs rabbitmq_auth_mechanism_ssl); default: the URI's ?auth_mechanism=, else plain"
  }, choice(["plain", "external"], { lowercase: true }))
}

/** The values of a command's flags, as its handler receives them. */
export type Values<F extends Flags> = { readonly [K in keyof F]: F[K] extends Flag<infer A> ? A : never }

/** The connection the flags name: `--uri`, or the default URI. */
export const connectionConfigOf = (values: Values<typeof connectionFlags>): Effect.Effect<ConnectionConfig, UsageError> =>
  Option.isSome(values.uri) ? Effect.succeed(values.uri.value) : connectionUri(DEFAULT_URI, "")

/** The broker layer for the connection flags; the TLS rules between them are checked now. */
export const brokerLayer = (values: Values<typeof connectionFlags>) =>
  Effect.gen(function*() {
    const config = yield* connectionConfigOf(values)
    const { ca, cert, key } = values
    const insecureSkipVerify = values["insecure-skip-verify"]
    const loadBalancer = values["load-balancer"] ? { loadBalancer: true } : {}
    const retry = retryFor(values["retry-for"])
    const sasl = Option.getOrUndefined(values.sasl) ?? config.sasl
    if (sasl === "external" && (config.tls === undefined || Option.isNone(cert))) {
      return yield* new UsageError({
        message: "--sasl external takes the TLS client certificate as the identity: use a rabbitmq-stream+tls:// URI with --cert and --key"
      })
    }
    if (config.tls === undefined) {
      if (Option.isSome(ca) || Option.isSome(cert) || Option.isSome(key) || insecureSkipVerify) {
        return yield* new UsageError({
          message: "--ca, --cert, --key and --insecure-skip-verify are for TLS: use a rabbitmq-stream+tls:// URI"
        })
      }
      return StreamBroker.layer({ ...config, retry, ...loadBalancer })
    }
    if (Option.isSome(cert) !== Option.isSome(key)) {
      return yield* new UsageError({ message: "--cert and --key go together (a client certificate and its key)" })
    }
    const tls = {
      ca: Option.isSome(ca) ? yield* readPem(ca.value) : undefined,
      cert: Option.isSome(cert) ? yield* readPem(cert.value) : undefined,
      key: Option.isSome(key) ? Redacted.make(yield* readPem(key.value)) : undefined,
      insecureSkipVerify
    }
    return StreamBroker.layer({ ...config, retry, tls, ...(sasl === undefined ? {} : { sasl }), ...loadBalancer })
  })

/** A PEM file; unreadable or not PEM is a usage error naming where it came from (`--ca`, `RABBITMQ_STREAM_CA`). */
const readPem = ({ path, source }: PemFile): Effect.Effect<string, UsageError> =>
  Effect.try({
    try: () => fs.readFileSync(path, "utf8"),
    catch: (e) =>
      new UsageError({ message: `cannot read ${source} ${path}: ${(e as { code?: string }).code ?? String(e)}` })
  }).pipe(
    Effect.filterOrFail(
      (text) => text.includes("-----BEGIN "),
      () => new UsageError({ message: `${source} ${path} is not a PEM file (no "-----BEGIN" line)` })
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

/** Where offsets are kept: the broker's own tracking, or a KeyValueStore in a directory. */
export type OffsetStoreChoice = "server" | { readonly file: string }

const offsetStoreChoice: Parse<OffsetStoreChoice> = (value, source) =>
  value === "server"
    ? Either.right(value)
    : value.startsWith("file:") && value.length > 5
    ? Either.right({ file: value.slice(5) })
    : usage(`${source} must be "server" or "file:DIR", got "${value}"`)

/** `--offset-store`: `server` (the broker's own tracking) or `file:DIR` (a KeyValueStore on disk). */
export const offsetStoreFlag = {
  "offset-store": defaultFlag({ help: "where offsets are kept: server, or file:DIR", default: "server" }, offsetStoreChoice)
}

/** A `file:DIR` offset store that cannot be used: one line, exit 1. */
export class OffsetStoreUnavailable extends Data.TaggedError("OffsetStoreUnavailable")<{ readonly message: string }> {}

/**
 * The offset store of `--offset-store`. `readOnly` (the `offset` command): a `file:DIR` that does
 * not exist is not created, it is a usage error.
 */
export const offsetStoreLayer = (choice: OffsetStoreChoice, options: { readonly readOnly?: boolean } = {}) => {
  if (choice === "server") return Effect.succeed(OffsetStore.layerServer)
  const dir = choice.file
  if (options.readOnly && !fs.existsSync(dir)) {
    return Effect.fail(new UsageError({ message: `--offset-store file:${dir}: the directory ${dir} does not exist` }))
  }
  return Effect.succeed(
    OffsetStore.layerKeyValueStore.pipe(
      Layer.provide(KeyValueStore.layerFileSystem(dir)),
      Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer)),
      Layer.mapError((e) =>
        new OffsetStoreUnavailable({ message: `cannot use --offset-store file:${dir}: ${e.message.split("\n")[0]}` })
      )
    )
  )
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
      Logger.withMinimumLogLevel(LogLevel.Info),
      // Effect's own fiber metrics (on by default) are not what /metrics is for, and cost per fiber.
      Effect.provide(RuntimeFlags.disableRuntimeMetrics)
    ),
    { disableErrorReporting: true, disablePrettyLogger: true }
  )

/** The one command, `stream-offsets send|receive|offset`, with `--help`, `--version` and completions. */
export const runCli = <Name extends string, E, A>(root: Command.Command<Name, never, E, A>, version: string): void => {
  const cli = Command.run(root, { name: `stream-offsets (effect-stream-offsets on ${runtimeName()})`, version })
  runMain(
    cli(process.argv).pipe(
      // Its parse errors are printed by @effect/cli as help text (several lines): we print one
      // line instead (see `report`), so its own printing goes nowhere.
      Effect.catchIf(ValidationError.isValidationError, (e) =>
        Effect.flatMap(usageLine(root, process.argv.slice(2), e), (message) => Effect.fail(new UsageError({ message })))),
      Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)),
      (program) => Effect.consoleWith((console) => Effect.withConsole(program, { ...console, error: () => Effect.void }))
    )
  )
}

/**
 * One line for a parse error of @effect/cli, pointing at --help. Our options never fail (their
 * errors reach the handlers), so an `InvalidValue` is an argument that no option took: the command's
 * own parser says which (the directive's leftover), and the subcommands' usage which flags take a
 * value (a known one left over had none).
 */
const usageLine = <Name extends string, E, A>(
  root: Command.Command<Name, never, E, A>,
  args: ReadonlyArray<string>,
  error: ValidationError.ValidationError
) => {
  const text = `${firstLine(error.error) ?? "invalid command line"} (see --help)`
  if (error._tag !== "InvalidValue") return Effect.succeed(text)
  const [name = ""] = Command.getNames(root)
  return Descriptor.parse(root.descriptor, [name, ...args], CliConfig.defaultConfig).pipe(
    Effect.map((directive) => {
      const argument = directive._tag === "UserDefined" ? directive.leftover[0] : undefined
      if (argument === undefined) return text
      const flag = /^--([a-z][a-z-]*)$/.exec(argument)?.[1]
      if (flag === undefined) return `unexpected argument "${argument}" (see --help)`
      // The flags of the subcommand given (a flag of another one is unknown here), else of all.
      const subcommands = Command.getSubcommands(root)
      const given = Option.flatMap(Option.fromNullable(args[0]), (command) => HashMap.get(subcommands, command))
      const usages = Option.match(given, {
        onNone: () => [...HashMap.values(subcommands)],
        onSome: (command) => [command]
      }).map(Descriptor.getUsage)
      return usages.some((usage) => valueFlags(usage).includes(`--${flag}`))
        ? `--${flag} needs a value (see --help)`
        : `unknown flag --${flag} (see --help)`
    }),
    Effect.orElseSucceed(() => text)
  )
}

/** The first line of text of a HelpDoc. */
const firstLine = (doc: HelpDoc.HelpDoc): string | undefined =>
  doc._tag === "Sequence"
    ? firstLine(doc.left) ?? firstLine(doc.right)
    : doc._tag === "Paragraph" || doc._tag === "Header"
    ? spanText(doc.value) || undefined
    : undefined

const spanText = (span: Span.Span): string =>
  span._tag === "Text" || span._tag === "URI"
    ? span.value
    : span._tag === "Sequence"
    ? spanText(span.left) + spanText(span.right)
    : spanText(span.value)

/** The flags of a command's usage that take a value (a switch accepts none). */
const valueFlags = (usage: Usage.Usage): ReadonlyArray<string> => {
  switch (usage._tag) {
    case "Named":
      return Option.isSome(usage.acceptedValues) ? usage.names : []
    case "Optional":
    case "Repeated":
      return valueFlags(usage.usage)
    case "Alternation":
    case "Concat":
      return [...valueFlags(usage.left), ...valueFlags(usage.right)]
    default:
      return []
  }
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

// ---- telemetry: Prometheus metrics and OTLP traces (src/Telemetry.ts, loaded only when asked for) ----

/** The telemetry flag of `send` and `receive`. */
export const telemetryFlags = {
  "metrics-port": optionalFlag({
    env: "METRICS_PORT",
    help: "serve the metrics as Prometheus text on http://HOST:PORT/metrics while running (traces go over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set)"
  }, port)
}

/**
 * The telemetry layer the flags and the environment ask for (none: an empty layer, and no
 * OpenTelemetry package is loaded). The metrics port, the OTLP endpoint and OpenTelemetry's
 * sampler variables are checked first: a port taken or not allowed, an endpoint that is not an
 * http(s) URL or a sampler not known is a usage error, said before anything connects. A collector
 * that does not answer is said once.
 */
export const telemetryLayer = (
  serviceName: string,
  values: Values<typeof telemetryFlags>
): Effect.Effect<Layer.Layer<never>, UsageError> =>
  Effect.gen(function*() {
    const metricsPort = Option.getOrUndefined(values["metrics-port"])
    const otlp = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined
    if (metricsPort === undefined && otlp === undefined) return Layer.empty
    if (metricsPort !== undefined) yield* bindable(metricsPort)
    const Telemetry = yield* Effect.tryPromise({
      try: () => import("./Telemetry.ts"),
      catch: (error) =>
        new UsageError({
          message: `--metrics-port and OTEL_EXPORTER_OTLP_ENDPOINT need the OpenTelemetry packages (see docs/library.md, "Export"): ${errorMessage(error)}`
        })
    })
    const sampler = Telemetry.traceSamplerFromEnv()
    if (otlp !== undefined) {
      if (!URL.canParse(otlp) || !/^https?:$/.test(new URL(otlp).protocol)) {
        const variable = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT"
        return yield* new UsageError({ message: redactUri(`${variable}=${otlp}: not an http:// or https:// URL (OTLP/HTTP: http://localhost:4318, say)`) })
      }
      if (Either.isLeft(sampler)) return yield* new UsageError({ message: sampler.left })
    }
    return Telemetry.layer({
      serviceName: process.env.OTEL_SERVICE_NAME ?? serviceName,
      metricsPort,
      onExportError: (error) => stderrLine(redactUri(`warning: traces are not exported to ${otlp}: ${errorMessage(error)}`))
    })
  })

const errorMessage = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0]

/** Listens on the port for a moment, as the metrics server will: in use or not allowed is said now. */
const bindable = (metricsPort: number): Effect.Effect<void, UsageError> =>
  Effect.async<void, UsageError>((resume) => {
    const server = net.createServer()
    server.once("error", (error: NodeJS.ErrnoException) =>
      resume(Effect.fail(
        new UsageError({
          message: error.code === "EADDRINUSE"
            ? `--metrics-port ${metricsPort}: the port is in use`
            : `--metrics-port ${metricsPort}: cannot listen on it (${error.code ?? error.message})`
        })
      )))
    server.listen(metricsPort, () => server.close(() => resume(Effect.void)))
  })
