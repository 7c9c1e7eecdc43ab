#!/usr/bin/env bash
# Runs bench/bench.ts on Node, Bun and Deno against the same broker, then prints one table.
#
#   bash bench/run.sh [--sizes 10000,100000] [--rounds 3]      (flags go to bench.ts)
#   BENCH_RUNTIMES="node bun" bash bench/run.sh ...            (a subset)
#
# Logs: $BENCH_OUT (default /tmp/effect-stream-offsets-bench)/<runtime>.log, results <runtime>.json,
# and chart.svg (bench/chart.ts) of the largest size. Each runtime is also
# bounded from outside (BENCH_TIMEOUT seconds, default 900), on top of bench.ts's own timeouts.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-/tmp/effect-stream-offsets-bench}
limit=${BENCH_TIMEOUT:-900}
mkdir -p "$out"
bash scripts/broker.sh status 2>/dev/null || bash scripts/broker.sh up || exit 1

status=0
for rt in ${BENCH_RUNTIMES:-node bun deno}; do
  case $rt in
  node) cmd=(node scripts/run.mjs bench/bench.ts) ;;
  bun) cmd=(node_modules/.bin/bun bench/bench.ts) ;;
  deno) cmd=(node_modules/.bin/deno run -A bench/bench.ts) ;;
  *) echo "unknown runtime $rt" >&2; exit 2 ;;
  esac
  echo "== $rt: ${cmd[*]} $*"
  timeout -k 10 "$limit" "${cmd[@]}" --deadline "$((limit - 20))" --json "$out/$rt.json" "$@" 2>&1 | tee "$out/$rt.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
done

echo
echo "## All runtimes"
echo
grep -h -m1 '^| runtime' "$out"/*.log | head -n 1
grep -h -m1 '^|---' "$out"/*.log | head -n 1
for rt in ${BENCH_RUNTIMES:-node bun deno}; do grep -h -E '^\| (Node|Bun|Deno) ' "$out/$rt.log"; done
# The chart of the largest size (runtimes side by side), from the JSON each run wrote.
jsons=()
for rt in ${BENCH_RUNTIMES:-node bun deno}; do [ -s "$out/$rt.json" ] && jsons+=("$out/$rt.json"); done
if [ "${#jsons[@]}" -gt 0 ]; then
  node scripts/run.mjs bench/chart.ts "$out/chart.svg" "${jsons[@]}" && echo "chart: $out/chart.svg (JSON: ${jsons[*]})"
fi
exit $status
