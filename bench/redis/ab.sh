#!/usr/bin/env bash
# Interleaved A/B of one hub build: `ssehub bench --url` (one-to-one, 1,000 client ids, 16
# publishers, 5 s) against a hub started from <dist> (memory broker, or with a third argument the
# Redis broker on a redis-server pinned to core 1); prints publishes/s, p50/p99 and the hub's
# utime+stime per published event. To compare builds, copy each build's dist/ and package.json
# into its own folder under node_modules/ (so that imports resolve), e.g. node_modules/.before/.
#   bench/redis/ab.sh node_modules/.before/dist redis-before redis
# Run from the repository root; needs taskset and redis-server.
set -eu
D=$1; L=$2; R=${3:-}
O=$(mktemp -d); PORTR=$(( 20000 + RANDOM % 20000 ))
ENV=""
if [ -n "$R" ]; then
  taskset -c 1 redis-server --port $PORTR --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  sleep 0.5; ENV="BENCH_REDIS_URL=redis://127.0.0.1:$PORTR"
fi
env $ENV BENCH_PORT=0 taskset -c 0 node "$D/bench/peers/ssehub-server.js" > "$O/hub.out" 2>&1 &
HUB=$!
for _ in $(seq 50); do grep -q listening "$O/hub.out" && break; sleep 0.1; done
PID=$(pgrep -P $HUB || echo $HUB)
PORT=$(grep -o '[0-9]*' "$O/hub.out")
a=$(awk '{print $14+$15}' /proc/$PID/stat)
node "$D/cli/main.js" bench --url "http://127.0.0.1:$PORT" --scenarios one-to-one --seconds 5 --out "$O/capacity" > "$O/bench.log" 2>&1
b=$(awk '{print $14+$15}' /proc/$PID/stat)
kill $PID; sleep 0.5
if [ -n "$R" ]; then redis-cli -p $PORTR shutdown nosave >/dev/null 2>&1 || true; fi
node -e "const r=require('$O/capacity.json');const n=r.phases.reduce((a,p)=>a+p.published,0);const p=r.phases[0];console.log('$L', 'pub/s', p.publishesPerSecond, 'p50', p.latency.p50Ms, 'p99', p.latency.p99Ms, 'hub cpu us/event', (($b-$a)*1e4/n).toFixed(1))"
rm -rf "$O"
