#!/usr/bin/env bash
# Multi-path goodput and failover stall (issue 7 item 7), on 127.0.0.1:
# one `sft recv --once`, two sft-netsim UDP proxies in front of it (the
# paths), `sft send FILE P1,P2 --json --transport quic --no-daemon`.
#
#   path 1  RATE1 (50mbit), DELAY1 each way (10ms: 20 ms RTT)
#   path 2  RATE2 (50mbit), DELAY2 each way (40ms: 80 ms RTT), LOSS2 (2%)
#
# goodput: SIZE_MB (default 32) MiB of random bytes; file bytes / the
#   sender's summary seconds, as a fraction of RATE1 + RATE2 (median of RUNS,
#   default 3). The chunk counters of the median run are printed too.
# stall: the same transfer; once FAIL_AT_CHUNKS (4) chunks are acknowledged,
#   path FAIL_PATH (1: the fast one) is blackholed (SIGUSR1) for the rest of
#   the run. Stall = the longest interval without a bytes_done increase in
#   the sender's progress events (every 100 ms; stamped on arrival here)
#   after the blackhole, counted from the last increase before it (median of
#   RUNS). Also printed: the time from the blackhole to link_down.
# Targets (issue 7): goodput >= 0.90 of the combined capacity; stall <= 1 s.
#
# Output: name=value lines (multipath_*). Binaries: SFT and NETSIM, or
# $BUILD/sft and $BUILD/sft-netsim (BUILD default build).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SFT=${SFT:-$BUILD/sft}
NETSIM=${NETSIM:-$BUILD/sft-netsim}
RATE1=${RATE1:-50} RATE2=${RATE2:-50} # Mbit/s
DELAY1=${DELAY1:-10ms} DELAY2=${DELAY2:-40ms} LOSS2=${LOSS2:-2%}
SIZE_MB=${SIZE_MB:-32}
RUNS=${RUNS:-3}
FAIL_PATH=${FAIL_PATH:-1}
FAIL_AT_CHUNKS=${FAIL_AT_CHUNKS:-4}
TIMEOUT=${TIMEOUT:-120}
[ -x "$SFT" ] && [ -x "$NETSIM" ] || { echo "multipath.sh: build sft_cli and sft_netsim first ($SFT, $NETSIM)" >&2; exit 1; }

T=$(mktemp -d /tmp/sft-mp-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
die() { echo "multipath.sh: $*" >&2; exit 1; }

# wait_file SECS PATTERN FILE: at most SECS for PATTERN (ERE) in FILE.
wait_file() {
  local i
  for ((i = 0; i < $1 * 20; i++)); do
    grep -Eq -- "$2" "$3" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

stamp() {
  local l
  while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done
}

# proxy N SPEC: starts proxy N to 127.0.0.1:$RPORT; sets PX[N], AD[N].
declare -A PX AD
proxy() {
  "$NETSIM" proxy --listen 127.0.0.1:0 --to "127.0.0.1:$RPORT" --spec "$2" \
    --stats-json "$T/p$1.json" >"$T/p$1.out" 2>"$T/p$1.err" &
  PX[$1]=$!
  PIDS+=("${PX[$1]}")
  wait_file 10 "^listening " "$T/p$1.out" || { cat "$T/p$1.err" >&2; die "proxy $1 did not start"; }
  AD[$1]=$(awk '/^listening /{print $2; exit}' "$T/p$1.out")
}

# run FAIL(0|1): one transfer; prints "goodput_bps stall_s down_s counters".
run() {
  local fail=$1 rpid spid t_bh=0
  rm -rf "$T/in" "$T/s.out"
  mkdir -p "$T/in"
  SFT_IDLE_TIMEOUT_MS=3000 "$SFT" recv --listen 127.0.0.1:0 --dir "$T/in" --once \
    --accept-any --json --data-dir "$T/rd" >"$T/r.out" 2>"$T/r.err" &
  rpid=$!
  PIDS+=("$rpid")
  wait_file 10 '"event":"listening"' "$T/r.out" || die "receiver did not start"
  RPORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$T/r.out" | head -1)
  proxy 1 "rate=${RATE1}mbit,delay=$DELAY1"
  proxy 2 "rate=${RATE2}mbit,delay=$DELAY2,loss=$LOSS2"
  { timeout "$TIMEOUT" "$SFT" send "$T/file" "${AD[1]},${AD[2]}" --json --no-daemon \
      --transport quic --data-dir "$T/sd" 2>"$T/s.err"
    echo "exit $?"; } | stamp >"$T/s.out" &
  spid=$!
  PIDS+=("$spid")
  if [ "$fail" = 1 ]; then
    wait_file 60 "\"chunks_done\":([$FAIL_AT_CHUNKS-9]|[1-9][0-9])" "$T/s.out" ||
      die "no progress"
    t_bh=$EPOCHREALTIME
    kill -USR1 "${PX[$FAIL_PATH]}"
  fi
  wait "$spid" || true
  for _ in $(seq 1 300); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.05; done
  kill "$rpid" "${PX[1]}" "${PX[2]}" 2>/dev/null || true
  wait "$rpid" "${PX[1]}" "${PX[2]}" 2>/dev/null || true
  grep -q '^[0-9.]* exit 0$' "$T/s.out" || { tail -3 "$T/s.err" >&2; die "send failed"; }
  cmp -s "$T/file" "$T/in/file" || die "copy differs"
  python3 - "$T/s.out" "$t_bh" <<'EOF'
import json, sys
since = float(sys.argv[2])
last_t, last_b, stall, down, summ = None, -1, 0.0, -1.0, None
for l in open(sys.argv[1]):
    t, _, j = l.partition(" ")
    if not j.startswith("{"):
        continue
    t, e = float(t), json.loads(j)
    ev = e.get("event")
    if ev == "summary":
        summ = e
    elif ev == "link_down" and since and down < 0:
        down = t - since
    elif ev == "progress" and e["bytes_done"] > last_b:
        if since and last_t is not None and t >= since:
            stall = max(stall, t - last_t)
        last_t, last_b = t, e["bytes_done"]
print("%d %.3f %.3f %d/%d/%d" % (summ["bytes"] / summ["seconds"] * 8, stall, down,
      summ["chunks_sent"], summ["chunks_resent"], summ["parity_sent"]))
EOF
}

median() { sort -g | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}'; }

head -c $((SIZE_MB << 20)) /dev/urandom >"$T/file"
cap=$(((RATE1 + RATE2) * 1000000))
: >"$T/g"
: >"$T/s"
for ((i = 1; i <= RUNS; i++)); do
  run 0 >>"$T/g"
  run 1 >>"$T/s"
done
g=$(awk '{print $1}' "$T/g" | median)
gline=$(awk -v g="$g" '$1 == g {print; exit}' "$T/g")
st=$(awk '{print $2}' "$T/s" | median)
dn=$(awk '{print $3}' "$T/s" | median)
echo "multipath_capacity_mbps=$((RATE1 + RATE2))"
echo "multipath_goodput_mbps=$(awk -v g="$g" 'BEGIN {printf "%.1f", g / 1e6}')"
echo "multipath_goodput_fraction=$(awk -v g="$g" -v c="$cap" 'BEGIN {printf "%.2f", g / c}')"
echo "multipath_goodput_runs_mbps=$(awk '{printf "%s%.1f", (NR > 1 ? "," : ""), $1 / 1e6}' "$T/g")"
echo "multipath_goodput_chunks_sent_resent_parity=${gline##* }"
echo "multipath_failover_stall_s=$st"
echo "multipath_failover_stall_runs_s=$(awk '{printf "%s%s", (NR > 1 ? "," : ""), $2}' "$T/s")"
echo "multipath_failover_link_down_s=$dn"
echo "multipath_failover_goodput_mbps=$(awk '{print $1}' "$T/s" | median | awk '{printf "%.1f", $1 / 1e6}')"
echo "multipath_failover_chunks_sent_resent_parity=$(awk '{print $4}' "$T/s" | paste -sd, -)"
