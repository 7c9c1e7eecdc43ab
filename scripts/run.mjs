// Runs a TypeScript entry file on the runtime that runs this script: package scripts say
// `node scripts/run.mjs src/main.ts send`, which is Node under `npm run` and Bun under `bun run`
// (bunfig.toml makes Bun run `node` itself). Bun runs TypeScript natively; Node through tsx.
import { resolve } from "node:path"
import process from "node:process"
import { pathToFileURL } from "node:url"

const [entry] = process.argv.splice(2, 1)
if (!process.versions.bun) {
  const { register } = await import("tsx/esm/api")
  register()
}
await import(pathToFileURL(resolve(entry)).href)
