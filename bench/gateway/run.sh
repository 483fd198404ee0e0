#!/usr/bin/env bash
# Gateway benchmark: requests per second and p99 latency of one small app
# instance reached (a) directly, (b) through the Flux gateway and (c) through
# nginx configured as a reverse proxy with a keep-alive upstream, with the
# same wrk settings, in one run, over several rounds. Loopback only; every
# measurement is bounded by DURATION.
#
#   bench/gateway/run.sh                      # defaults below
#   ROUNDS=5 DURATION=10 bench/gateway/run.sh
#
# Two settings are measured in each round:
#   throughput: wrk -t THREADS -c CONNECTIONS, back to back (saturates the proxy)
#   latency:    wrk -t 1 -c LATENCY_CONNECTIONS, each connection pausing
#               PAUSE_MS between requests (a few thousand requests per second,
#               far below capacity), so that latency shows what a hop adds
#               rather than queueing
# Prints the medians over the rounds and the ratios; exits non-zero if a
# target fails to answer.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
LATENCY_CONNECTIONS=${LATENCY_CONNECTIONS:-4}
PAUSE_MS=${PAUSE_MS:-1}
# Worker threads (gateway, backend) and worker processes (nginx): the same for both proxies.
WORKERS=${WORKERS:-$(nproc)}
BACKEND=127.0.0.1:${BACKEND_PORT:-38080}
GATEWAY=127.0.0.1:${GATEWAY_PORT:-38081}
NGINX=127.0.0.1:${NGINX_PORT:-38082}
HOST_HEADER="Host: bench.flux.localhost"
# Every process of the benchmark (backend, proxies, wrk) runs at this nice
# level when allowed, so that other work on the machine disturbs it less.
PRIORITY=${PRIORITY:--10}
if nice -n "$PRIORITY" true 2>/dev/null; then RUN=(nice -n "$PRIORITY"); else RUN=(); PRIORITY=0; fi

need() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "installing $2" >&2
  apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; }
}
need nginx nginx
need wrk wrk
need curl curl

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flux-target}"
cargo build --release --quiet -p flux-gateway --example bench_backend --example bench_gateway
BIN="$CARGO_TARGET_DIR/release/examples"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

"${RUN[@]}" "$BIN/bench_backend" "$BACKEND" "$WORKERS" &
PIDS+=($!)
"${RUN[@]}" "$BIN/bench_gateway" "$GATEWAY" "$BACKEND" "$WORKERS" &
PIDS+=($!)

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream app {
    server $BACKEND;
    keepalive 256;
  }
  server {
    listen $NGINX;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
    }
  }
}
EOF
"${RUN[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

declare -A URL=([direct]="http://$BACKEND/" [gateway]="http://$GATEWAY/" [nginx]="http://$NGINX/")
TARGETS=(direct gateway nginx)

for target in "${TARGETS[@]}"; do
  for _ in $(seq 100); do
    curl -fsS -o /dev/null -H "$HOST_HEADER" "${URL[$target]}" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null -H "$HOST_HEADER" "${URL[$target]}" || { echo "$target does not answer" >&2; exit 1; }
done

cat >"$WORK/paced.lua" <<LUA
function delay()
  return $PAUSE_MS
end
LUA

# wrk's output -> "requests_per_second p50_microseconds p99_microseconds"
parse() {
  awk '
    function us(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v + 0 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000000 }
      return v
    }
    /^ +50%/ { p50 = us($2) }
    /^ +99%/ { p99 = us($2) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses/ { bad = 1 }
    END { if (bad || rps == "") { print "FAILED"; exit 1 } printf "%.0f %.0f %.0f\n", rps, p50, p99 }'
}

run() { # setting target
  local options=(-t "$THREADS" -c "$CONNECTIONS")
  if [ "$1" = latency ]; then options=(-t 1 -c "$LATENCY_CONNECTIONS" -s "$WORK/paced.lua"); fi
  timeout $((DURATION + 30)) "${RUN[@]}" wrk "${options[@]}" -d "${DURATION}s" --latency \
    -H "$HOST_HEADER" "${URL[$2]}" | parse
}

echo "warming up" >&2
for target in "${TARGETS[@]}"; do DURATION=2 run throughput "$target" >/dev/null; done

RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for setting in throughput latency; do
    for target in "${TARGETS[@]}"; do
      read -r rps p50 p99 < <(run "$setting" "$target")
      echo "$setting $target $rps $p50 $p99" >>"$RESULTS"
      printf 'round %d  %-10s %-8s %8s req/s  p50 %6s us  p99 %6s us\n' "$round" "$setting" "$target" "$rps" "$p50" "$p99" >&2
    done
  done
done

echo
echo "machine: $(nproc) cores ($(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')), $(free -g | awk '/Mem:/ {print $2}') GB RAM, Linux $(uname -r)"
echo "tools: $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk --version 2>&1 | head -1 | awk '{print "wrk " $2}'), $(rustc --version | awk '{print $1 " " $2}')"
echo "settings: $ROUNDS rounds of ${DURATION}s; throughput wrk -t$THREADS -c$CONNECTIONS, latency wrk -t1 -c$LATENCY_CONNECTIONS pausing ${PAUSE_MS} ms; $WORKERS workers for backend, gateway and nginx; nice $PRIORITY"
echo
awk '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { k = $1 " " $2; rps[k] = rps[k] " " $3; p50[k] = p50[k] " " $4; p99[k] = p99[k] " " $5 }
  END {
    printf "| setting | target | req/s | p50 | p99 | req/s ÷ direct | req/s ÷ nginx | p50 added | p99 added |\n"
    printf "|---|---|---|---|---|---|---|---|---|\n"
    split("throughput latency", settings, " "); split("direct gateway nginx", targets, " ")
    for (s = 1; s <= 2; s++) {
      d = median(rps[settings[s] " direct"]); n = median(rps[settings[s] " nginx"])
      d50 = median(p50[settings[s] " direct"]); d99 = median(p99[settings[s] " direct"])
      for (t = 1; t <= 3; t++) {
        k = settings[s] " " targets[t]; r = median(rps[k]); a = median(p50[k]); b = median(p99[k])
        printf "| %s | %s | %.0f | %.3f ms | %.3f ms | %.2f | %.2f | %+.3f ms | %+.3f ms |\n", settings[s], targets[t], r, a / 1000, b / 1000, r / d, r / n, (a - d50) / 1000, (b - d99) / 1000
      }
    }
    print ""
    print "Medians over the rounds; added: median of the target minus median of direct."
  }' "$RESULTS"
