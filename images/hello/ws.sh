#!/bin/sh
# A WebSocket echo server for one connection on stdin and stdout (hello.sh
# runs it under `nc -ll -e` when WS_PORT is set): answers the handshake, then
# sends back every text or binary message, answers pings, and closes when
# asked. Messages up to 65535 bytes, unfragmented; slow, as a shell is.
set -u

cr="$(printf '\r')"
key=""
while IFS= read -r line; do
  line="${line%"$cr"}"
  [ -z "$line" ] && break
  case "$line" in
    [Ss][Ee][Cc]-[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]-[Kk][Ee][Yy]:*)
      key="$(echo ${line#*:})" ;;
  esac
done
if [ -z "$key" ]; then
  printf 'HTTP/1.1 400 Bad Request\r\nContent-Length: 22\r\nConnection: close\r\n\r\nwebsocket only here.\r\n'
  exit 0
fi
accept="$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | sha1sum | cut -d' ' -f1 | xxd -r -p | base64)"
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' "$accept"

# N bytes of stdin as decimal numbers.
bytes() {
  dd bs=1 count="$1" 2>/dev/null | od -An -v -tu1
}

# Writes a frame header of opcode $1 and length $2 (server frames are unmasked).
header() {
  if [ "$2" -lt 126 ]; then
    printf "\\$(printf %03o $((128 | $1)))\\$(printf %03o "$2")"
  else
    printf "\\$(printf %03o $((128 | $1)))\\176\\$(printf %03o $(($2 / 256)))\\$(printf %03o $(($2 % 256)))"
  fi
}

while :; do
  set -- $(bytes 2)
  [ $# -eq 2 ] || exit 0
  op=$(($1 & 15))
  len=$(($2 & 127))
  if [ "$len" -eq 126 ]; then
    set -- $(bytes 2)
    len=$(($1 * 256 + $2))
  elif [ "$len" -eq 127 ]; then
    exit 0
  fi
  set -- $(bytes 4)
  m0=$1 m1=$2 m2=$3 m3=$4
  out=""
  i=0
  for b in $(bytes "$len"); do
    case $((i % 4)) in
      0) m=$m0 ;;
      1) m=$m1 ;;
      2) m=$m2 ;;
      *) m=$m3 ;;
    esac
    out="$out\\$(printf %03o $((b ^ m)))"
    i=$((i + 1))
  done
  case "$op" in
    8) header 8 0; exit 0 ;;
    9) header 10 "$len"; printf "$out" ;;
    1 | 2) header "$op" "$len"; printf "$out" ;;
  esac
done
