#!/usr/bin/env node
/**
 * `stream-offsets send|receive|offset`: the one command (the npm package's bin), with `--help` for
 * each subcommand, `--version` and shell completions (`--completions bash|zsh|fish|sh`).
 * `npm run send`, `bun run send` and `deno task send` run `main.ts send`.
 */
import * as Command from "@effect/cli/Command"
import * as fs from "node:fs"
import { runCli } from "./cli.ts"
import { offsetCommand } from "./offset.ts"
import { receiveCommand } from "./receive.ts"
import { sendCommand } from "./send.ts"

/** The package's version, from package.json beside src/ (or dist/). */
const VERSION: string = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

const streamOffsets = Command.make("stream-offsets").pipe(
  Command.withDescription("RabbitMQ Streams offset tracking: publish, consume from where you left off, inspect and move offsets."),
  Command.withSubcommands([sendCommand, receiveCommand, offsetCommand])
)

runCli(streamOffsets, VERSION)
