#!/usr/bin/env bash
# The whole test suite (npm test): brings the broker up if needed, type-checks, then runs the unit
# tests (in-memory layers) and the integration and end-to-end tests (real RabbitMQ 4, Node, Bun
# and Deno). Fails if the broker cannot be started: integration tests never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

bash scripts/broker.sh up
echo "== type check"
tsc --noEmit
echo "== vitest"
report=$(mktemp)
status=0
vitest run --reporter=default --reporter=json --outputFile="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)
' "$report" || true
rm -f "$report"
exit "$status"
