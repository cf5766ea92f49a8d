#!/usr/bin/env bash
# Instructions per one-to-one publish through the hub server's default front, counted by
# callgrind (repeatable whatever else the machine does, unlike seconds): the server's total for
# 12,000 publishes minus its total for 2,000, divided by 10,000. Startup and the 1,000 streams
# cancel out.
#
# bench/micro/publish-instructions.sh <checkout dir with a built dist/> [port]
set -euo pipefail
dir=$(cd "$1" && pwd)
port=${2:-18500}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
total() {
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.out" \
    node --import tsx "$here/publish-server.ts" "$dir" "$port" "$1" > "$out/$1.log" 2>&1 &
  local server=$!
  for _ in $(seq 1 600); do grep -q ready "$out/$1.log" && break; sleep 0.5; done
  node --import tsx "$here/publish-load.ts" "$port" "$1"
  wait "$server"
  grep '^totals:' "$out/$1.out" | cut -d' ' -f2
}
small=$(total 2000)
large=$(total 12000)
echo "instructions per publish: $(( (large - small) / 10000 ))"
rm -rf "$out"
