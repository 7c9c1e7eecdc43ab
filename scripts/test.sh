#!/usr/bin/env bash
# The whole test suite (npm test): brings the broker up if needed, type-checks, then runs the unit
# tests (in-memory layers) and the integration and end-to-end tests (real RabbitMQ 4, Node, Bun
# and Deno). Fails if the broker cannot be started: integration tests never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

bash scripts/broker.sh up
# A broker this script did not start (a non-root user's own RabbitMQ, say) cannot be restarted,
# frozen or cut by it, and has neither its TLS test CA, nor the cluster, nor the mTLS node: the test
# files that need those are not run (vitest.config.ts lists them, and says so); the rest are. CI
# (CI set) must run them all.
if [ -z "$(bash scripts/broker.sh mode)" ]; then
  if [ -n "${CI:-}" ]; then
    echo "npm test: CI is set but the broker on localhost:${RABBITMQ_STREAM_PORT:-5552} was not started by scripts/broker.sh, so the restart, fault, TLS and cluster tests cannot run; stop it, or run as root" >&2
    exit 1
  fi
  export TEST_UNMANAGED_BROKER=1
fi
# The terminal tests type into a real pseudo-terminal through tmux (a Debian package), and the TLS
# tests make a foreign CA with openssl.
for tool in tmux openssl; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "== installing $tool"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool"; } >/dev/null ||
      { echo "could not install $tool with apt-get: the terminal and TLS tests need it" >&2; exit 1; }
  }
done
echo "== type check"
tsc --noEmit
echo "== vitest"
report=$(mktemp)
status=0
vitest run --reporter=default --reporter=json --outputFile="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
  const notRun = process.env.TEST_UNMANAGED_BROKER === "1" ? "; NOT RUN: the files that need a broker scripts/broker.sh started (listed above)" : ""
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped${notRun}`)
' "$report" || true
rm -f "$report"
exit "$status"
