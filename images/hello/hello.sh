#!/bin/sh
# The example app: serves a page naming this instance, and /health.
#
# Listens on $HOST:$PORT when set (the exec driver sets both), else on port
# 8080 of every address (in a container, Docker publishes it). Pages are
# written to $WWW_DIR (default /www) at start:
#   /          an HTML page naming app, component, instance and node
#   /whoami    the same in one line of text: app/component#instance@node
#   /health    "ok"
#   /cgi-bin/bytes?N   N zero bytes, streamed as they are made
# With WS_PORT set, a WebSocket echo server (ws.sh) also listens on that port.
set -eu

www="${WWW_DIR:-/www}"
app="${FLUX_APP:-hello}"
component="${FLUX_COMPONENT:-web}"
instance="${FLUX_INSTANCE:-0}"
node="${FLUX_NODE:-local}"

mkdir -p "$www"
cat > "$www/index.html" <<PAGE
<!doctype html>
<meta charset="utf-8">
<title>$app</title>
<h1>${GREETING:-hello} from $app</h1>
<p>component <b>$component</b>, instance <b>$instance</b>, node <code>$node</code></p>
PAGE
printf '%s/%s#%s@%s\n' "$app" "$component" "$instance" "$node" > "$www/whoami"
printf 'ok\n' > "$www/health"
mkdir -p "$www/cgi-bin"
cat > "$www/cgi-bin/bytes" <<'CGI'
#!/bin/sh
n="${QUERY_STRING:-0}"
case "$n" in '' | *[!0-9]*) n=0 ;; esac
printf 'Content-Type: application/octet-stream\r\n\r\n'
exec head -c "$n" /dev/zero
CGI
chmod +x "$www/cgi-bin/bytes"

listen="${PORT:-8080}"
if [ -n "${HOST:-}" ]; then
  listen="$HOST:$listen"
fi
if [ -n "${WS_PORT:-}" ]; then
  echo "WebSocket echo on port $WS_PORT"
  nc -ll -p "$WS_PORT" -e /bin/sh "$(dirname "$0")/ws.sh" &
fi
echo "serving $app/$component#$instance on $listen"
exec httpd -f -v -p "$listen" -h "$www"
