#!/usr/bin/env bash
# Builds the example image flux-hello:latest (used by the README walkthrough
# and the agent's tests) from Debian's busybox-static, with no registry.
#
#   images/build.sh [TAG]     (default flux-hello:latest)
#
# Installs busybox-static with apt-get when run as root and it is missing;
# BUSYBOX=/path/to/static/busybox picks another binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tag="${1:-flux-hello:latest}"

is_static() {
  [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1
}

busybox="${BUSYBOX:-}"
if [ -z "$busybox" ]; then
  for candidate in /bin/busybox /usr/bin/busybox "$(command -v busybox || true)"; do
    if [ -n "$candidate" ] && is_static "$candidate"; then
      busybox="$candidate"
      break
    fi
  done
fi
if [ -z "$busybox" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing busybox-static" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
    busybox=/bin/busybox
  else
    echo "a static busybox is needed: install busybox-static (apt-get install busybox-static) or set BUSYBOX" >&2
    exit 1
  fi
fi
if ! is_static "$busybox"; then
  echo "$busybox is not a static binary; install busybox-static or set BUSYBOX" >&2
  exit 1
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/bin" "$context/owned/www" "$context/owned/data"
cp "$busybox" "$context/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$context/rootfs/bin/$applet"
done
cp "$here/hello/hello.sh" "$context/rootfs/hello.sh"
cp "$here/hello/ws.sh" "$context/rootfs/ws.sh"
cp "$here/hello/Dockerfile" "$context/Dockerfile"

if ! docker build --quiet --tag "$tag" "$context" >"$context/build.log" 2>&1; then
  cat "$context/build.log" >&2
  exit 1
fi
echo "built $tag"
