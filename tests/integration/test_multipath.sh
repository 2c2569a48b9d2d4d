#!/usr/bin/env bash
# Multi-path end to end (issue 7 item 6): one `sft recv`, several
# sft-netsim UDP proxies in front of it (the paths), `sft send FILE
# P1,P2 --json`. Every transfer must end with exit status 0 on both sides and
# a byte-identical copy (cmp). Cases:
#   a  two paths of 50 Mbit/s deliver >= 1.7x the goodput of one (same file,
#      same run: one path alone, then both)
#   b  one of two paths blackholed (SIGUSR1) mid-transfer: identical copy,
#      link_down reported, and the longest stall after the blackhole (the
#      longest interval without a bytes_done increase in the 100 ms progress
#      events, stamped on arrival) reported; <= 10 s asserted (failover
#      happened); the 1 s target is bench/multipath.sh's
#   c  --priority critical over paths of 10 ms and 60 ms RTT: >= 80 % of the
#      data bytes cross the 10 ms proxy (proxies' --stats-json up.bytes_out)
#   d  a path that recovers is used again: path A blackholed, link_down seen;
#      then A's proxy is replaced by a clean one on the same port (its
#      counters start at 0, so every byte it counts is post-recovery): it
#      carries >= 1 MiB before the end, and the sender reports link_up
#   e  an unreachable path (a UDP port with nothing listening) in the list,
#      first or last: reported (a warning: "never answered"), skipped,
#      completes without waiting for its handshake timeout (10 s; < 8 s
#      asserted: all paths are tried at once)
#   f  two paths answered by two receivers of different identities: the
#      first verified fixes the identity, the other is refused, exit 4
# Timing: progress events carry no time, so the sender's stdout is stamped
# line by line on arrival ($EPOCHREALTIME) by a reader in this shell.
#
# ASan build (SFT_SANITIZE=ON in $SFT_BUILD_DIR/CMakeCache.txt, as
# scripts/run-tests' second pass): smaller files and half the rates (the
# sender's CPU, not the link, would be measured otherwise).
# Environment: SFT_MP_CASES (default "a b c d e") picks cases.
# SFT_MP_PENDING (default none): cases that fail today because of a known
# product bug; they run and their result is printed, without failing the
# test (remove a letter once its bug is fixed).
# (a was pending at x1.4-1.66 while every link could queue 16 MiB unsent:
#  chunks waited seconds on one path, the receiver's NEED timer fired on
#  them and parity and early resends ate capacity; with per-link queues of
#  about 250 ms of the path's delivery rate it gives x1.8, 0 resent.)
# (b was pending until the receiver sent ACKs on every link: an ACK sent on
#  the link being blackholed was lost with it and nothing repeated it, so
#  the sender waited for its 60 s resend timeout; ~9 % of runs.)
. "$(dirname "$0")/lib.sh"
# (SFT_MP_KEEP=1 keeps the temporary directory for a look afterwards.)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${SFT_MP_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}

CASES=${SFT_MP_CASES:-"a b c d e f"}
PENDING=${SFT_MP_PENDING-""}
NETSIM=${SFT_BUILD_DIR:?}/sft-netsim
[ -x "$NETSIM" ] || fail "no $NETSIM (build the sft_netsim target)"
MIB=1048576
ASAN=0
grep -Eqi '^SFT_SANITIZE:BOOL=(ON|1|TRUE|YES)$' "$SFT_BUILD_DIR/CMakeCache.txt" 2>/dev/null && ASAN=1
RATE=50        # Mbit/s per path (case a)
SIZE_A=$((16 * MIB))
SIZE_B=$((16 * MIB))
if [ "$ASAN" = 1 ]; then
  RATE=25
  SIZE_A=$((8 * MIB))
  SIZE_B=$((8 * MIB))
fi
SEND_TIMEOUT=40 # s per transfer
RECV_GRACE=15   # s a receiver may take to exit after its sender
# A receiver (--once) exits when the session has no connection left; a
# connection whose path was blackholed at the end lingers until its QUIC
# idle timeout (30 s by default): 3 s here (engine.c's test knob).
RECV_IDLE_MS=3000

# wait_for PID SECS: waits at most SECS for PID (then kills it); sets RC.
wait_for() {
  local pid=$1 secs=$2 i
  RC=0
  for ((i = 0; i < secs * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    echo "killed $pid after $secs s" >&2
  fi
  wait "$pid" || RC=$?
}

# wait_grep SECS PATTERN FILE: waits at most SECS for PATTERN (ERE) in FILE.
wait_grep() {
  local secs=$1 pat=$2 file=$3 i
  for ((i = 0; i < secs * 20; i++)); do
    grep -Eq -- "$pat" "$file" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# start_proxy NAME SPEC [LISTEN]: a proxy to the receiver ($PORT); sets
# PX_<NAME> (pid) and ADDR_<NAME> (ADDR:PORT); stats -> $T/NAME.stats.json.
start_proxy() {
  local n=$1 spec=$2 listen=${3:-127.0.0.1:0} pid addr=
  "$NETSIM" proxy --listen "$listen" --to "127.0.0.1:$PORT" --spec "$spec" \
    --stats-json "$T/$n.stats.json" >"$T/$n.p.out" 2>"$T/$n.p.err" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 200); do
    addr=$(awk '/^listening /{print $2; exit}' "$T/$n.p.out" 2>/dev/null || true)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$addr" ] || { cat "$T/$n.p.err" >&2; fail "proxy $n did not start"; }
  printf -v "PX_$n" %s "$pid"
  printf -v "ADDR_$n" %s "$addr"
}
stop_proxy() {
  local v="PX_$1"
  kill -TERM "${!v}" 2>/dev/null || true
  wait_for "${!v}" 10
  [ -s "$T/$1.stats.json" ] || fail "proxy $1 wrote no stats"
}

# pstat NAME KEY: a field of proxy NAME's stats (e.g. up.bytes_out).
pstat() {
  python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d)' "$T/$1.stats.json" "$2"
}

# stamp: copies stdin to stdout, each line prefixed with its arrival time
# (seconds, microsecond resolution).
stamp() {
  local l
  while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done
}

# start_recv_once NAME: `sft recv --once` into $T/NAME.in; sets RPID, PORT.
start_recv_once() {
  mkdir -p "$T/$1.in"
  SFT_IDLE_TIMEOUT_MS=$RECV_IDLE_MS start_recv "$1.r" --dir "$T/$1.in" --once --accept-any --json --data-dir "$T/rd"
  RPID=$RECV_PID
}

# start_send NAME FILE TARGETS [options]: `sft send FILE TARGETS --json`
# in the background; stamped stdout in $T/NAME.s.out, ending with a line
# "T exit RC"; sets SPID (the stamping pipeline: it ends with the sender).
start_send() {
  local n=$1 file=$2 tg=$3
  shift 3
  { timeout "$SEND_TIMEOUT" "$SFT" send "$file" "$tg" --no-daemon --json \
      --transport quic --data-dir "$T/sd" "$@" 2>"$T/$n.s.err"
    echo "exit $?"; } | stamp >"$T/$n.s.out" &
  SPID=$!
  PIDS+=("$SPID")
}

# finish_xfer NAME FILE: waits for the sender and the receiver; asserts
# both exit 0, an ok summary and an identical copy. Sets SECS (the
# sender's summary seconds) and GOODPUT (bytes/s from the summary).
finish_xfer() {
  local n=$1 file=$2 rc
  wait_for "$SPID" $((SEND_TIMEOUT + 5))
  wait_for "$RPID" "$RECV_GRACE"
  local rrc=$RC
  rc=$(awk '$2 == "exit" {print $3}' "$T/$n.s.out")
  [ "$rc" = 0 ] && [ "$rrc" = 0 ] || {
    show "$n"
    fail "$n: send exit ${rc:-?}, recv exit $rrc"
  }
  cmp "$file" "$T/$n.in/${file##*/}" || fail "$n: copy differs"
  grep -q '"event":"summary","ok":true' "$T/$n.s.out" || fail "$n: no ok summary"
  read -r SECS GOODPUT < <(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    t, _, j = l.partition(" ")
    if j.startswith("{"):
        e = json.loads(j)
        if e.get("event") == "summary":
            print(e["seconds"], int(e["bytes"] / max(e["seconds"], 1e-3)))' "$T/$n.s.out")
}

# summ NAME: "chunks_sent/chunks_resent/parity_sent" of NAME's summary.
summ() {
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = l.partition(" ")[2]
    if j.startswith("{"):
        e = json.loads(j)
        if e.get("event") == "summary":
            print("%d sent/%d resent/%d parity" % (e["chunks_sent"], e["chunks_resent"], e["parity_sent"]))' "$T/$1.s.out"
}

# show NAME: what a failed case left.
show() {
  local f
  for f in "$T/$1".*; do
    case $f in *.bin | *.in) continue ;; esac
    [ -f "$f" ] || continue
    echo "--- ${f##*/}" >&2
    grep -v '"event":"progress"' "$f" | tail -n 12 >&2 || true
  done
}

# stall NAME SINCE: the longest interval (s) without a bytes_done increase
# among the progress events stamped after SINCE (epoch seconds), counted from
# the last increase before SINCE; up to the last increase (bytes_done =
# total ends the transfer).
stall() {
  python3 -c 'import json,sys
since = float(sys.argv[2])
last_t, last_b, worst = None, -1, 0.0
for l in open(sys.argv[1]):
    t, _, j = l.partition(" ")
    if not j.startswith("{"): continue
    e = json.loads(j)
    if e.get("event") != "progress": continue
    t = float(t)
    b = e["bytes_done"]
    if b > last_b:
        if last_t is not None and t >= since:
            worst = max(worst, t - max(last_t, 0))
        last_t, last_b = t, b
print("%.3f" % worst)' "$T/$1.s.out" "$2"
}

# free_udp_port: a UDP port with nothing bound to it (just released).
free_udp_port() {
  python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case_a() {
  local one two ratio
  head -c "$SIZE_A" /dev/urandom >"$T/a.bin"
  # One path alone.
  start_recv_once a1
  start_proxy a1p "rate=${RATE}mbit,delay=10ms"
  start_send a1 "$T/a.bin" "$ADDR_a1p"
  finish_xfer a1 "$T/a.bin"
  one=$GOODPUT
  stop_proxy a1p
  # Two such paths.
  start_recv_once a2
  start_proxy a2p "rate=${RATE}mbit,delay=10ms"
  start_proxy a2q "rate=${RATE}mbit,delay=10ms"
  start_send a2 "$T/a.bin" "$ADDR_a2p,$ADDR_a2q"
  finish_xfer a2 "$T/a.bin"
  two=$GOODPUT
  stop_proxy a2p
  stop_proxy a2q
  ratio=$(python3 -c "print('%.2f' % ($two / $one))")
  echo "a: one path $((one * 8 / 1000000)) Mbit/s, two paths $((two * 8 / 1000000)) Mbit/s (x$ratio); bytes per proxy $(pstat a2p up.bytes_out) / $(pstat a2q up.bytes_out); chunks $(summ a1) (one), $(summ a2) (two)"
  python3 -c "import sys; sys.exit(0 if $two >= 1.7 * $one else 1)" ||
    fail "a: two paths x$ratio the goodput of one (< 1.7)"
  ok "a: two ${RATE} Mbit/s paths: x$ratio the goodput of one"
}

case_b() {
  local t_bh s
  head -c "$SIZE_B" /dev/urandom >"$T/b.bin"
  start_recv_once b
  start_proxy bp "rate=${RATE}mbit,delay=10ms"
  start_proxy bq "rate=${RATE}mbit,delay=10ms"
  start_send b "$T/b.bin" "$ADDR_bp,$ADDR_bq"
  # Mid-transfer: both links up and two chunks acknowledged.
  wait_grep 20 '"links_up":2' "$T/b.s.out" || { show b; fail "b: never two links up"; }
  wait_grep 20 '"chunks_done":([2-9]|[1-9][0-9])' "$T/b.s.out" ||
    { show b; fail "b: no progress"; }
  t_bh=$EPOCHREALTIME
  kill -USR1 "$PX_bp"
  finish_xfer b "$T/b.bin"
  stop_proxy bp
  stop_proxy bq
  grep -q '"event":"link_down"' "$T/b.s.out" || fail "b: no link_down after the blackhole"
  [ "$(pstat bp up.drop_outage)" -gt 0 ] || fail "b: the black hole dropped nothing"
  s=$(stall b "$t_bh")
  # Functional check only (failover happened, not the 30 s idle timeout);
  # the 1 s target is measured by bench/multipath.sh, not asserted here.
  python3 -c "import sys; sys.exit(0 if $s <= 10 else 1)" ||
    fail "b: stalled $s s after the blackhole (> 10 s: no failover)"
  ok "b: path blackholed mid-transfer: identical copy in $SECS s, longest stall $s s; chunks $(summ b)"
}

case_c() {
  local fast slow pct
  head -c $((6 * MIB)) /dev/urandom >"$T/c.bin"
  start_recv_once c
  start_proxy cf "delay=5ms,rate=100mbit"
  start_proxy cs "delay=30ms,rate=100mbit"
  # The slow path first: the choice is by RTT, not by list order.
  start_send c "$T/c.bin" "$ADDR_cs,$ADDR_cf" --priority critical
  finish_xfer c "$T/c.bin"
  stop_proxy cf
  stop_proxy cs
  fast=$(pstat cf up.bytes_out)
  slow=$(pstat cs up.bytes_out)
  pct=$((100 * fast / (fast + slow)))
  [ "$pct" -ge 80 ] || fail "c: only $pct % of the bytes on the 10 ms path ($fast vs $slow)"
  ok "c: critical: $pct % of the bytes on the 10 ms RTT path ($fast vs $slow bytes)"
}

case_d() {
  local after port_a
  # 2 x 16 Mbit/s limited to 24 Mbit/s: 12 MiB take ~4 s; the blackhole
  # (>= 1 s to link_down) and the 1 s reconnect backoff fit well before
  # the end, and the other path alone cannot take the whole budget.
  head -c $((12 * MIB)) /dev/urandom >"$T/d.bin"
  start_recv_once d
  start_proxy da "rate=16mbit,delay=10ms"
  start_proxy db "rate=16mbit,delay=10ms"
  start_send d "$T/d.bin" "$ADDR_da,$ADDR_db"
  wait_grep 20 '"links_up":2' "$T/d.s.out" || { show d; fail "d: never two links up"; }
  kill -USR1 "$PX_da"
  wait_grep 15 '"event":"link_down"' "$T/d.s.out" || { show d; fail "d: no link_down"; }
  # Recovery: a clean proxy on A's port (counters from 0).
  port_a=${ADDR_da##*:}
  stop_proxy da
  start_proxy da2 "rate=16mbit,delay=10ms" "127.0.0.1:$port_a"
  finish_xfer d "$T/d.bin"
  stop_proxy da2
  stop_proxy db
  after=$(pstat da2 up.bytes_out)
  [ "$(grep -c '"event":"link_up"' "$T/d.s.out")" -ge 3 ] ||
    fail "d: no link_up after the recovery"
  [ "$after" -ge "$MIB" ] ||
    fail "d: path A carried $after bytes after it recovered (< 1 MiB)"
  ok "d: recovered path used again: $after bytes on A after its link_down, $(pstat db up.bytes_out) on B"
}

case_e() {
  local dead order tg
  head -c $((2 * MIB)) /dev/urandom >"$T/e.bin"
  for order in first last; do
    start_recv_once "e$order"
    start_proxy "e${order}p" "delay=5ms"
    dead=127.0.0.1:$(free_udp_port)
    local v="ADDR_e${order}p"
    if [ $order = first ]; then tg="$dead,${!v}"; else tg="${!v},$dead"; fi
    start_send "e$order" "$T/e.bin" "$tg"
    finish_xfer "e$order" "$T/e.bin"
    stop_proxy "e${order}p"
    # Every path is tried at once, so the dead one holds nothing up (it
    # cannot answer before its 10 s handshake timeout; the transfer takes
    # well under a second): it is reported, and the transfer did not wait
    # for it.
    grep -Eq '"event":"(warning|link_down)".*'"$dead" "$T/e$order.s.out" ||
      { show "e$order"; fail "e: unreachable $order path not reported"; }
    python3 -c "import sys; sys.exit(0 if $SECS < 8 else 1)" ||
      fail "e: the unreachable $order path held the transfer ($SECS s)"
    ok "e: unreachable path ($order in the list) reported and skipped; done in $SECS s"
  done
}

case_f() {
  local rc
  # Two receivers with different identities given as two paths of one
  # receiver: every path is opened at once, and whichever is verified
  # first fixes the receiver's identity; the other presents another one,
  # and the sender refuses to go on (exit 4, "presents ..., not ...").
  head -c $((1 * MIB)) /dev/urandom >"$T/f.bin"
  mkdir -p "$T/f1.in" "$T/f2.in"
  start_recv f1 --dir "$T/f1.in" --once --accept-any --json --data-dir "$T/rf1"
  local p1=$PORT r1=$RECV_PID
  start_recv f2 --dir "$T/f2.in" --once --accept-any --json --data-dir "$T/rf2"
  local p2=$PORT r2=$RECV_PID
  start_send f "$T/f.bin" "127.0.0.1:$p1,127.0.0.1:$p2" --data-dir "$T/sdf"
  wait_for "$SPID" $((SEND_TIMEOUT + 5))
  kill "$r1" "$r2" 2>/dev/null || true
  rc=$(awk '$2 == "exit" {print $3}' "$T/f.s.out")
  [ "$rc" = 4 ] || { show f; fail "f: send exit ${rc:-?}, want 4 (identity)"; }
  grep -q 'presents SFT1-.*not SFT1-' "$T/f.s.err" "$T/f.s.out" ||
    { show f; fail "f: no identity mismatch message"; }
  ok "f: a second path answered by another receiver identity: refused (exit 4)"
}

FAILED=
for c in $CASES; do
  declare -F "case_$c" >/dev/null || fail "unknown case '$c'"
  pending=0
  [[ " $PENDING " == *" $c "* ]] && pending=1
  t0=$(date +%s)
  rc=0
  (
    PIDS=()
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
    "case_$c"
  ) || rc=$?
  secs=$(($(date +%s) - t0))
  if [ "$pending" = 1 ]; then
    if [ "$rc" = 0 ]; then
      echo "PENDING CASE $c PASSED in $secs s: remove it from PENDING"
    else
      echo "pending - $c failed in $secs s (known product bug, see PENDING)"
    fi
  elif [ "$rc" != 0 ]; then
    echo "not ok - $c ($secs s)"
    FAILED="$FAILED $c"
  else
    echo "     ($c took $secs s)"
  fi
done
[ -z "$FAILED" ] || fail "cases failed:$FAILED"
