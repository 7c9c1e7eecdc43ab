#!/usr/bin/env bash
# The live check against rstream, both ways, on the project's broker (run by hand: rstream cannot be
# installed in CI; CI replays its recorded bytes instead, see test/fixtures/amqp/):
#   1. rstream writes messages with properties and falsy application properties; `receive --json
#      --until-end` on Node, Bun and Deno reads every one, every field;
#   2. `send --json` writes messages with properties and filter values; rstream reads every field.
#   test/interop/rstream-live.sh RSTREAM_DIR     (RSTREAM_DIR from ../shared/tools/rstream-env.sh)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 RSTREAM_DIR" >&2; exit 2; }
cd "$(dirname "$0")/../.."
export PATH="$PWD/node_modules/.bin:$PATH" PYTHONPATH="$1"
stream="interop-$$"
/usr/bin/python3 test/interop/rstream_write.py "$stream-from" 10
args=(--stream "$stream-from" --no-marker --until-end --json)
echo "node: $(npm run -s receive -- "${args[@]}" --name check-node 2>/dev/null | wc -l) messages"
echo "bun: $(bun run --silent receive "${args[@]}" --name check-bun 2>/dev/null | wc -l) messages"
echo "deno: $(deno task -q receive "${args[@]}" --name check-deno 2>/dev/null | tee /tmp/interop-$$.jsonl | wc -l) messages; the first:"
head -n 1 "/tmp/interop-$$.jsonl"
echo "only region eu, filtered by the broker (rstream's filter values) and by the application property:"
npm run -s receive -- --stream "$stream-from" --name eu --no-marker --idle-timeout 2s --print --filter eu --filter-property region 2>/dev/null | wc -l
printf '%s\n' \
  '{"body":"hello 0","properties":{"messageId":"id-0","correlationId":{"ulong":7},"contentType":"text/plain"},"applicationProperties":{"region":"eu","n":0,"flag":false,"empty":"","none":null,"big":{"long":1099511627776},"pi":3.5},"filterValue":"eu"}' \
  '{"body":"hello 1","applicationProperties":{"region":"us"},"filterValue":"us"}' \
  '{"body":"","amqpValue":"a string value"}' | npm run -s send -- --stream "$stream-to" --from - --json >/dev/null
echo "rstream reads what send --json wrote:"
/usr/bin/python3 test/interop/rstream_read.py "$stream-to" 3
