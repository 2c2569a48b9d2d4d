#!/usr/bin/env bash
# Many short sessions through a lossy link (reliability.md checklist item 2,
# "handshake under heavy loss"): N sequential `sft send` of a 1 KiB file
# each, through one sft-netsim UDP proxy with SPEC, to one long-running
# `sft recv` on 127.0.0.1. Every session is a new process: a QUIC handshake,
# HELLO, OFFER, one chunk, COMPLETE and the end of a session.
#
#   SPEC     default "delay=15ms,ge=30%:3,seed=7" (30 % loss each way in
#            bursts of mean 3 packets, 30 ms RTT)
#   N        sessions (default 50); each is bounded by SESSION_TIMEOUT (60 s)
#
# A session passes when `sft send` exits 0 and the copy is identical.
# Output: name=value lines (sessions_*): sessions passed/failed, the median
# and the slowest session's wall time, and each failure's exit status and
# last error. The checklist's pass: N/N within 300 s.
#
# Binaries: SFT and NETSIM, or $BUILD/sft and $BUILD/sft-netsim.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SFT=${SFT:-$BUILD/sft}
NETSIM=${NETSIM:-$BUILD/sft-netsim}
SPEC=${SPEC:-delay=15ms,ge=30%:3,seed=7}
N=${N:-50}
SESSION_TIMEOUT=${SESSION_TIMEOUT:-60}
[ -x "$SFT" ] && [ -x "$NETSIM" ] || { echo "sessions.sh: build sft_cli and sft_netsim first ($SFT, $NETSIM)" >&2; exit 1; }

T=$(mktemp -d /tmp/sft-sessions.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/in" "$T/src"

# wait_line FILE REGEX: until FILE has a line matching REGEX (10 s).
wait_line() {
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "sessions.sh: no '$2' in $1" >&2
  exit 1
}

"$SFT" recv --dir "$T/in" --accept-any --listen 127.0.0.1:0 --json \
  --data-dir "$T/rd" >"$T/r.out" 2>"$T/r.err" &
PIDS+=($!)
wait_line "$T/r.out" '"event":"listening"'
port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$T/r.out" | head -n 1)
"$NETSIM" proxy --listen 127.0.0.1:0 --to "127.0.0.1:$port" --spec "$SPEC" \
  --stats-json "$T/stats.json" >"$T/p.out" 2>&1 &
PROXY=$!
PIDS+=("$PROXY")
wait_line "$T/p.out" '^listening '
paddr=$(awk '/^listening /{print $2; exit}' "$T/p.out")

pass=0 fail=0
: >"$T/ms"
t_all0=$(date +%s%N)
for i in $(seq "$N"); do
  head -c 1024 /dev/urandom >"$T/src/f$i"
  t0=$(date +%s%N)
  rc=0
  timeout "$SESSION_TIMEOUT" "$SFT" send "$T/src/f$i" "$paddr" --no-daemon \
    --transport quic --json --data-dir "$T/sd" >"$T/s.out" 2>"$T/s.err" || rc=$?
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000)) >>"$T/ms"
  if [ "$rc" = 0 ] && cmp -s "$T/src/f$i" "$T/in/f$i"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    why=$(tail -n 1 "$T/s.err" | tr '\n"' ' _')
    echo "sessions_failure_$i=exit $rc after $(((t1 - t0) / 1000000)) ms: $why"
  fi
done
t_all1=$(date +%s%N)
kill -INT "$PROXY" 2>/dev/null || true
wait "$PROXY" 2>/dev/null || true

echo "sessions_spec=$SPEC"
echo "sessions_n=$N"
echo "sessions_passed=$pass"
echo "sessions_failed=$fail"
echo "sessions_total_s=$(((t_all1 - t_all0) / 1000000000))"
echo "sessions_median_ms=$(sort -n "$T/ms" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
echo "sessions_max_ms=$(sort -n "$T/ms" | tail -n 1)"
[ -s "$T/stats.json" ] && echo "sessions_proxy=$(tr -d '\n' <"$T/stats.json")"
exit 0
