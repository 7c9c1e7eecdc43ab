#!/bin/sh
# Runs a TypeScript entry file with the runtime that invoked the package script:
# `bun run send` runs it on Bun, `npm run send` on Node (through tsx). Deno uses deno.json's tasks.
case "${npm_config_user_agent:-}" in
bun/*) exec "$npm_execpath" "$@" ;;
*) exec "$(dirname "$0")/../node_modules/.bin/tsx" "$@" ;;
esac
