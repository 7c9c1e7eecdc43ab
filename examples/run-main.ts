/**
 * `NodeRuntime.runMain` for the examples (copy it with them), with one addition for terminals.
 *
 * Under `bun run` and `deno task`, one Ctrl-C reaches the program twice: the terminal signals the
 * whole foreground process group, and the runner forwards its own copy. `runMain` handles the
 * first (it interrupts the program, whose finalizers store the consumer's offset) and stops
 * listening, so the copy would kill the process with the default action before that store is made.
 * Here a signal within a second of the first is taken as that same Ctrl-C; a later one exits at
 * once, so the process never becomes deaf to Ctrl-C.
 *
 * A failure is printed as one line on stderr (the library's errors say what happened and what to
 * do); a defect, which is a bug, keeps its stack trace.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Option } from "effect"
import process from "node:process"

const SAME_SIGNAL_WITHIN_MS = 1000

export const runMain = <E, A>(program: Effect.Effect<A, E>): void => {
  let first: number | undefined
  const onSignal = () => {
    const now = Date.now()
    first ??= now
    if (now - first > SAME_SIGNAL_WITHIN_MS) process.exit(130)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  NodeRuntime.runMain(
    program.pipe(
      Effect.tapErrorCause((cause) => {
        if (Cause.isInterruptedOnly(cause)) return Effect.void
        const failure = Cause.failureOption(cause)
        return Console.error(
          Option.isNone(failure)
            ? Cause.pretty(cause)
            : failure.value instanceof Error
            ? `${failure.value.name}: ${failure.value.message}`
            : String(failure.value)
        )
      })
    ),
    { disableErrorReporting: true }
  )
}
