#!/usr/bin/env bash
# Consensus benchmark: finality latency and finalized transfers per second of
# a 4-validator devnet on loopback (release build, `flux devnet up --nodes 4`),
# under the load generator crates/flux-cli/examples/bench_consensus.rs, which
# funds new accounts, pre-signs transfers and posts them through the API of
# all four nodes. Each round starts a fresh devnet and runs two settings:
#   latency:    LATENCY_RATE transfers/s, paced (far below capacity), so that
#               finality latency shows consensus rather than queueing
#   throughput: ACCOUNTS x TXS_PER_ACCOUNT transfers as fast as WORKERS
#               submitters can post them, BATCH per request to
#               /api/v1/transactions/batch (BATCH=1: one per request to
#               /api/v1/transactions); TXS_PER_ACCOUNT at most 64, the
#               mempool's bound per account
# Prints each run's JSON and the medians over ROUNDS rounds.
#
# The devnet and the load generator run at NICE (default -10 when run as
# root, else 0), so that other work on a shared machine disturbs them less.
#
# BLOCK_INTERVAL_BUSY_MS sets the genesis's block_interval_busy_ms (written
# into genesis.json between `devnet init` and `devnet up`); setting it to the
# block interval turns early blocks off, for comparison.
#
#   bench/consensus/run.sh
#   ROUNDS=5 BLOCK_INTERVAL_MS=200 bench/consensus/run.sh
#   BLOCK_INTERVAL_BUSY_MS=1000 bench/consensus/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
BLOCK_INTERVAL_MS=${BLOCK_INTERVAL_MS:-}
BLOCK_INTERVAL_BUSY_MS=${BLOCK_INTERVAL_BUSY_MS:-}
LATENCY_RATE=${LATENCY_RATE:-100}
LATENCY_TXS=${LATENCY_TXS:-10}
ACCOUNTS=${ACCOUNTS:-2500}
TXS_PER_ACCOUNT=${TXS_PER_ACCOUNT:-40}
WORKERS=${WORKERS:-32}
BATCH=${BATCH:-100}
NICE=${NICE:-$([ "$(id -u)" = 0 ] && echo -10 || echo 0)}
# A loopback range of its own, so that a devnet on 127.0.0.x is not disturbed.
API_HOST=${API_HOST:-127.0.9.1}
TARGET=${CARGO_TARGET_DIR:-target}
# release, or dev (the workspace's dev profile builds dependencies at opt-level 2).
PROFILE=${PROFILE:-release}
OUTPUT_DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")

# BUILD=0 runs the binaries already built (e.g. while the tree is being edited).
if [ "${BUILD:-1}" != 0 ]; then
  cargo build --profile "$PROFILE" --quiet -p flux-cli --bin flux --example bench_consensus
fi
flux="$TARGET/$OUTPUT_DIR/flux"
load="$TARGET/$OUTPUT_DIR/examples/bench_consensus"
base="${API_HOST%.*}"
last="${API_HOST##*.}"
nodes="$(for i in 0 1 2 3; do printf 'http://%s.%d:16127,' "$base" $((last + i)); done)"
nodes="${nodes%,}"

work="$(mktemp -d)"
devnet_pid=""
cleanup() {
  if [ -n "$devnet_pid" ]; then
    kill -TERM "$devnet_pid" 2>/dev/null || true
    wait "$devnet_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print(eval('d' + sys.argv[1]))" "$1"; }

results="$work/results"
: >"$results.latency"
: >"$results.throughput"
for round in $(seq 1 "$ROUNDS"); do
  dir="$work/devnet-$round"
  if [ -n "$BLOCK_INTERVAL_BUSY_MS" ]; then
    "$flux" --home "$work/home-$round" devnet init --nodes 4 --dir "$dir" --api-host "$API_HOST" \
      ${BLOCK_INTERVAL_MS:+--block-interval-ms "$BLOCK_INTERVAL_MS"} >"$work/init-$round.log" 2>&1
    python3 - "$dir/genesis.json" "$BLOCK_INTERVAL_BUSY_MS" <<'PY'
import json, sys
path, busy = sys.argv[1], int(sys.argv[2])
genesis = json.load(open(path))
genesis["params"]["block_interval_busy_ms"] = busy
json.dump(genesis, open(path, "w"), indent=2)
PY
  fi
  nice -n "$NICE" "$flux" --home "$work/home-$round" devnet up --nodes 4 --dir "$dir" --api-host "$API_HOST" \
    ${BLOCK_INTERVAL_MS:+--block-interval-ms "$BLOCK_INTERVAL_MS"} >"$work/up-$round.log" 2>&1 &
  devnet_pid=$!
  until "$flux" --home "$work/home-$round" devnet status --dir "$dir" --json 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if all(n.get("peers")==3 and n.get("height",0)>=2 for n in s) else 1)' 2>/dev/null; do
    kill -0 "$devnet_pid" 2>/dev/null || { cat "$work/up-$round.log" >&2; exit 1; }
    sleep 0.5
  done
  latency="$(nice -n "$NICE" "$load" --nodes "$nodes" --accounts "$((LATENCY_RATE / 5 > 4 ? LATENCY_RATE / 5 : 4))" \
    --txs-per-account "$LATENCY_TXS" --rate "$LATENCY_RATE" --workers 4)"
  echo "round $round latency:    $latency"
  echo "$latency" >>"$results.latency"
  throughput="$(nice -n "$NICE" "$load" --nodes "$nodes" --accounts "$ACCOUNTS" \
    --txs-per-account "$TXS_PER_ACCOUNT" --workers "$WORKERS" --batch "$BATCH")"
  echo "round $round throughput: $throughput (load $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "$throughput" >>"$results.throughput"
  kill -TERM "$devnet_pid"
  wait "$devnet_pid" || true
  devnet_pid=""
done

echo
echo "medians over $ROUNDS round(s), $PROFILE build, block interval ${BLOCK_INTERVAL_MS:-default}, busy ${BLOCK_INTERVAL_BUSY_MS:-default}, batch $BATCH, nice $NICE, load $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min):"
for key in p50 p99; do
  printf '  finality %s at %s tx/s: %s ms\n' "$key" "$LATENCY_RATE" \
    "$(while read -r l; do echo "$l" | field "['finality_ms']['$key']"; done <"$results.latency" | median)"
done
for key in p50 p99; do
  printf '  finality %s under full load: %s ms\n' "$key" \
    "$(while read -r l; do echo "$l" | field "['finality_ms']['$key']"; done <"$results.throughput" | median)"
done
printf '  submitted tx/s: %s\n' "$(while read -r l; do echo "$l" | field "['submit_rate']"; done <"$results.throughput" | median)"
printf '  finalized tx/s: %s\n' "$(while read -r l; do echo "$l" | field "['finalized_tps']"; done <"$results.throughput" | median)"
