#!/usr/bin/env bash
# Deploy latency: from `flux app deploy` to all 3 instances of an app
# answering HTTP, on a 4-node devnet, with the image already present.
#
#   bench/deploy/run.sh                 # 10 deploys, the debug binary
#   RUNS=20 FLUX=target/release/flux bench/deploy/run.sh
#
# Starts its own devnet on 127.0.51.x in a temporary directory, builds the
# example image (images/build.sh), then RUNS times: deploys a 3-instance app
# (flux-hello, one component), polls each node's address every 50 ms until
# three distinct instances answer /whoami, records the time from the start of
# `flux app deploy` (signing and submission included), removes the app and
# waits until its containers are gone. Prints every time, p50 and max;
# exits non-zero when the p50 is above TARGET_MS.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-10}
FLUX=${FLUX:-target/debug/flux}
TARGET_MS=${TARGET_MS:-5000}
PORT=${PORT:-31200}
SUBNET=${SUBNET:-127.0.51}
API_PORT=${API_PORT:-16127}

[ -x "$FLUX" ] || { echo "no flux binary at $FLUX; run cargo build first" >&2; exit 1; }
command -v docker >/dev/null && docker info >/dev/null 2>&1 ||
  { echo "no Docker engine answers; the deploy benchmark needs one" >&2; exit 1; }
images/build.sh >/dev/null

work=$(mktemp -d)
devnet_pid=
cleanup() {
  if [ -n "$devnet_pid" ]; then kill -INT "$devnet_pid" 2>/dev/null || true; wait "$devnet_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

flux() { "$FLUX" --home "$work/home" --node "http://$SUBNET.1:$API_PORT" "$@"; }
now_ms() { date +%s%3N; }

"$FLUX" --home "$work/home" devnet up --dir "$work/devnet" --api-host "$SUBNET.1" \
  --api-port "$API_PORT" >"$work/devnet.log" 2>&1 &
devnet_pid=$!
for _ in $(seq 1 600); do
  [ "$(flux --json node list 2>/dev/null | grep -c '"id"')" = 4 ] && break
  sleep 0.2
done
[ "$(flux --json node list 2>/dev/null | grep -c '"id"')" = 4 ] ||
  { echo "the devnet did not register its 4 nodes:"; tail -20 "$work/devnet.log"; exit 1; } >&2
owner=$(flux --json keys show dev0 | sed -n 's/.*"address": "\(.*\)".*/\1/p')

# Distinct instances answering /whoami (app/component#instance@node) on any
# node's address: a node hosting no instance forwards the port to one that
# does, so instances are told apart by their answer, not by address.
answering() {
  for i in 1 2 3 4; do
    curl -fs -m 1 "http://$SUBNET.$i:$PORT/whoami" 2>/dev/null
  done | sort -u | grep -c '#' || true
}

times=()
for run in $(seq 1 "$RUNS"); do
  app="bench$run"
  spec="$work/$app.json"
  cat >"$spec" <<JSON
{"version": 8, "name": "$app", "description": "deploy benchmark", "owner": "$owner",
 "instances": 3, "contacts": [], "geolocation": [], "expire": 86400, "nodes": [],
 "staticip": false, "enterprise": "",
 "compose": [{"name": "web", "description": "web", "repotag": "flux-hello:latest",
   "ports": [$PORT], "containerPorts": [8080], "domains": [""],
   "environmentParameters": [], "commands": [], "containerData": "",
   "cpu": 0.1, "ram": 100, "hdd": 1, "tiered": false, "secrets": "", "repoauth": ""}]}
JSON
  start=$(now_ms)
  flux app deploy "$spec" --from dev0 >/dev/null 2>&1
  until [ "$(answering)" -ge 3 ]; do
    if [ $(($(now_ms) - start)) -gt 120000 ]; then echo "run $run: not all instances answered within 120 s" >&2; exit 1; fi
    sleep 0.05
  done
  elapsed=$(($(now_ms) - start))
  times+=("$elapsed")
  echo "run $run: ${elapsed} ms"
  flux app remove "$app" --from dev0 >/dev/null
  until [ -z "$(docker ps -aq --filter "label=flux.app=$app")" ] && [ "$(answering)" = 0 ]; do sleep 0.1; done
done

sorted=($(printf '%s\n' "${times[@]}" | sort -n))
count=${#sorted[@]}
p50=${sorted[$(((count - 1) / 2))]}
max=${sorted[$((count - 1))]}
echo "deploys: $count  p50: ${p50} ms  max: ${max} ms  target: p50 <= ${TARGET_MS} ms"
[ "$p50" -le "$TARGET_MS" ]
