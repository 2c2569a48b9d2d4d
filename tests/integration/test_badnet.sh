#!/usr/bin/env bash
# Bad networks end to end (issue 5 item 6): sft send -> sft-netsim UDP proxy
# -> sft recv, all on 127.0.0.1. Each case sends one file of random bytes and
# asserts exit status 0 on both sides and a byte-identical copy (cmp), plus
# its own check:
#   a  30 % loss each way, 200 ms RTT
#   b  five outages of 2 s (the transfer spans all five)
#   c  1 Mbit/s rate limit: completes, and the chunk size chosen for the
#      files offered after the rate is measured drops (more chunks than on
#      a clean link)
#      (= a smaller chunk size; --json shows chunks_total, not the size)
#   d  2 % corruption each way: the proxy corrupted data packets (> 0), the
#      copy is identical (QUIC's AEAD drops them silently: neither side
#      counts or reports them, so the proxy's count is the evidence)
#   e  reordering and duplication: both happened, the copy is identical
#   f  UDP silently dropped, TCP open on the same port number: the sender
#      falls back to TCP+TLS after its 3 s handshake deadline and completes
#   g  UDP silent for the first 4 s, nothing on TCP: the sender starts its
#      TCP attempt at 3 s, which is refused, and goes on with its QUIC
#      attempt, which completes once UDP passes (session 5's race: before
#      it, the QUIC attempt was abandoned at 3 s)
#   (the stripe whose m chunks the proxy drops is test_recv_hostile's
#   test_fec_rebuild_from_parity and the tests beside it)
# The netsim proxy carries UDP only, so cases a-e force --transport quic (a
# fallback to TCP would bypass the impairments).
#
# Environment: SFT_BADNET_CASES (default "a b c d e f") picks cases;
# pending cases run only with SFT_BADNET_ALL=1, and their result is reported
# without failing the test. SFT_BADNET_TIMEOUT: seconds per transfer (60).
. "$(dirname "$0")/lib.sh"

# Cases that fail today because a feature is missing (do not fake them;
# remove a letter when its feature lands):
#   a  runs in its own CTest (test_badnet_loss30.sh: it can take most of a
#      slot, the --once receiver may wait for its idle timeout when the last
#      packets are lost); with ONE connection ngtcp2 0.12's BBR2 window
#      collapses to 4 packets and 2 MiB can take minutes.
PENDING=${SFT_BADNET_PENDING-"a"}
CASES=${SFT_BADNET_CASES:-"a b c d e f g"}
CASE_TIMEOUT=${SFT_BADNET_TIMEOUT:-60}
RECV_GRACE=40 # s a receiver may take to exit after its sender (idle timeout 30 s)
NETSIM=${SFT_BUILD_DIR:?}/sft-netsim
[ -x "$NETSIM" ] || fail "no $NETSIM (build the sft_netsim target)"
FWD="$(dirname "$0")/badnet_tcpfwd.py"
MIB=1048576
# ASan+UBSan build: smaller files where the time is CPU, not the link.
ASAN=0
grep -Eqi '^SFT_SANITIZE:BOOL=(ON|1|TRUE|YES)$' "$SFT_BUILD_DIR/CMakeCache.txt" 2>/dev/null && ASAN=1
BIG=$((4 * MIB)); [ "$ASAN" = 1 ] && BIG=$((2 * MIB))

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

# start_proxy NAME TARGET SPEC: sets PROXY_PID and PROXY (ADDR:PORT); the
# stats go to $T/NAME.stats.json when it stops (stop_proxy).
start_proxy() {
  "$NETSIM" proxy --listen 127.0.0.1:0 --to "$2" --spec "$3" \
    --stats-json "$T/$1.stats.json" >"$T/$1.p.out" 2>"$T/$1.p.err" &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  PROXY=
  for _ in $(seq 1 200); do
    PROXY=$(awk '/^listening /{print $2; exit}' "$T/$1.p.out" 2>/dev/null || true)
    [ -n "$PROXY" ] && return 0
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$T/$1.p.err" >&2
  fail "proxy $1 did not start"
}
stop_proxy() {
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  wait_for "$PROXY_PID" 10
  [ -s "$T/$1.stats.json" ] || fail "proxy $1 wrote no stats"
}

# pstat NAME KEY: a field of the proxy's stats, e.g. up.corrupted, sent_up.
pstat() {
  python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d)' "$T/$1.stats.json" "$2"
}

# chunks NAME: the largest chunks_total in the sender's --json progress.
chunks() {
  python3 -c 'import json,sys
n = 0
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("event") == "progress": n = max(n, e["chunks_total"])
print(n)' "$T/$1.s.out"
}

# xfer NAME SPEC SIZE [send options]: sends $T/NAME.bin (SIZE random bytes)
# through a proxy with SPEC to `sft recv --once` into $T/NAME.in. Sets
# SEND_RC, RECV_RC, MS (sender wall time) and RMS (receiver's extra time);
# leaves $T/NAME.{s.out,s.err,r.out,r.err,stats.json}.
xfer() {
  local c=$1 spec=$2 size=$3 t0 t1 t2 rpid
  shift 3
  mkdir -p "$T/$c.in"
  if [ -n "${XFER_FILES:-}" ]; then
    # $T/NAME.bin is a directory of XFER_FILES files of SIZE bytes each
    mkdir -p "$T/$c.bin"
    for i in $(seq 1 "$XFER_FILES"); do head -c "$size" /dev/urandom >"$T/$c.bin/f$i"; done
  else
    head -c "$size" /dev/urandom >"$T/$c.bin"
  fi
  start_recv "$c.r" --dir "$T/$c.in" --once --accept-any --json --data-dir "$T/rd"
  rpid=$RECV_PID
  start_proxy "$c" "127.0.0.1:$PORT" "$spec"
  t0=$(date +%s%N)
  SEND_RC=0
  timeout "$CASE_TIMEOUT" "$SFT" send "$T/$c.bin" "$PROXY" --no-daemon --json \
    --data-dir "$T/sd" "$@" >"$T/$c.s.out" 2>"$T/$c.s.err" || SEND_RC=$?
  t1=$(date +%s%N)
  # A receiver whose sender failed waits for it to come back: do not wait.
  if [ "$SEND_RC" = 0 ]; then wait_for "$rpid" "$RECV_GRACE"; else wait_for "$rpid" 2; fi
  RECV_RC=$RC
  t2=$(date +%s%N)
  stop_proxy "$c"
  MS=$(((t1 - t0) / 1000000))
  RMS=$(((t2 - t1) / 1000000))
}

# show NAME: what a failed case left (events other than progress, stats).
show() {
  local f
  for f in "$T/$1.s.out" "$T/$1.s.err" "$T/$1.r.out" "$T/$1.r.err" "$T/$1.stats.json"; do
    [ -f "$f" ] || continue
    echo "--- ${f##*/}" >&2
    grep -v '"event":"progress"' "$f" | tail -n 12 >&2 || true
  done
}

# expect_ok NAME: both exit statuses 0 and the copy identical.
expect_ok() {
  local c=$1
  [ "$SEND_RC" = 0 ] && [ "$RECV_RC" = 0 ] || {
    show "$c"
    fail "$c: send exit $SEND_RC after $MS ms, recv exit $RECV_RC"
  }
  if [ -d "$T/$c.bin" ]; then
    diff -r "$T/$c.bin" "$T/$c.in/$c.bin" >/dev/null || fail "$c: copy differs"
  else
    cmp "$T/$c.bin" "$T/$c.in/$c.bin" || fail "$c: copy differs"
  fi
  grep -q '"event":"summary","ok":true' "$T/$c.s.out" || fail "$c: no ok summary"
}

case_a() {
  xfer a "delay=100ms,loss=30%,seed=1" $((2 * MIB)) --transport quic
  expect_ok a
  ok "a: 30 % loss, 200 ms RTT: 2 MiB identical in $MS ms (proxy dropped $(pstat a up.drop_loss) up, $(pstat a down.drop_loss) down; receiver exited $RMS ms later)"
}

case_b() {
  # Windows [1,3) [3.5,5.5) [6,8) [8.5,10.5) [11,13) s after the proxy starts.
  # Before 11 s the link is up 3 s at 4 Mbit/s: 1.5 MB < 3 MiB, so the
  # transfer is still running when the fifth outage begins.
  xfer b "delay=10ms,rate=4mbit,outage=5x2s/2500ms@1s" $((3 * MIB)) --transport quic
  expect_ok b
  [ "$(pstat b up.drop_outage)" -gt 0 ] && [ "$(pstat b down.drop_outage)" -gt 0 ] ||
    fail "b: no outage drops"
  [ "$MS" -ge 11000 ] || fail "b: done in $MS ms, before the fifth outage"
  ok "b: five 2 s outages: 3 MiB identical in $MS ms ($(pstat b up.drop_outage) + $(pstat b down.drop_outage) datagrams dropped in outages)"
}

case_c() {
  # Four files of 384 KiB: the first is offered before any rate is known
  # (1 MiB chunks: one chunk); the others once the delivery rate is
  # measured, with a chunk size chosen from it (about 1 s of data per
  # chunk: 64 KiB at 1 Mbit/s), so the total chunk count goes up; on a
  # clean link they keep 1 MiB chunks (4 chunks in all).
  local clean slow
  XFER_FILES=4 xfer c0 "delay=25ms" $((384 * 1024)) --transport quic
  expect_ok c0
  clean=$(chunks c0)
  XFER_FILES=4 xfer c "delay=25ms,rate=1mbit" $((384 * 1024)) --transport quic
  expect_ok c
  slow=$(chunks c)
  [ "$slow" -gt "$clean" ] ||
    fail "c: 1.5 MiB in $slow chunk(s) at 1 Mbit/s, $clean on a clean link: chunk size not reduced"
  ok "c: 1 Mbit/s: 4 files of 384 KiB identical in $MS ms, $slow chunks (clean link: $clean): the chunk size dropped once the rate was measured"
}

case_d() {
  xfer d "delay=5ms,corrupt=2%,seed=4" "$BIG" --transport quic
  expect_ok d
  # (Only the data direction is asserted: ~100 ACK datagrams come back, so
  # 2 % of them may be none.)
  [ "$(pstat d up.corrupted)" -gt 0 ] || fail "d: the proxy corrupted nothing"
  ok "d: 2 % corruption: $((BIG / MIB)) MiB identical in $MS ms ($(pstat d up.corrupted) up / $(pstat d down.corrupted) down datagrams corrupted)"
}

case_e() {
  xfer e "delay=5ms,jitter=2ms,reorder=10%,dup=10%,seed=5" "$BIG" --transport quic
  expect_ok e
  [ "$(pstat e up.reordered)" -gt 0 ] && [ "$(pstat e up.duplicated)" -gt 0 ] ||
    fail "e: nothing reordered or duplicated"
  ok "e: reordering + duplication: $((BIG / MIB)) MiB identical in $MS ms ($(pstat e up.reordered) reordered, $(pstat e up.duplicated) duplicated up)"
}

# f: the receiver listens on UDP and TCP (port R). The sender aims at port
# P: UDP P is a proxy that drops every datagram (no ICMP, like a firewall),
# TCP P is forwarded to TCP R (badnet_tcpfwd.py). Expected: QUIC gets no
# answer, the sender gives up after 3 s and completes over TCP+TLS.
case_f() {
  local fpid fport t0 t1 ms try
  mkdir -p "$T/f.in"
  head -c "$BIG" /dev/urandom >"$T/f.bin"
  start_recv f.r --dir "$T/f.in" --once --accept-any --json --data-dir "$T/rd"
  local rpid=$RECV_PID rport=$PORT
  for try in 1 2 3; do # the TCP port number may be taken: new proxy, retry
    start_proxy f "127.0.0.1:$rport" "loss=100%"
    fport=${PROXY##*:}
    python3 "$FWD" "$fport" "$rport" >"$T/f.fwd.out" 2>"$T/f.fwd.err" &
    fpid=$!
    PIDS+=("$fpid")
    for _ in $(seq 1 200); do
      grep -q '^listening' "$T/f.fwd.out" 2>/dev/null && break
      kill -0 "$fpid" 2>/dev/null || break
      sleep 0.05
    done
    grep -q '^listening' "$T/f.fwd.out" && break
    kill "$fpid" 2>/dev/null || true; wait "$fpid" || true
    kill -TERM "$PROXY_PID"; wait "$PROXY_PID" || true
    [ "$try" = 3 ] && { cat "$T/f.fwd.err" >&2; fail "f: TCP forwarder did not start"; }
  done
  t0=$(date +%s%N)
  SEND_RC=0
  timeout "$CASE_TIMEOUT" "$SFT" send "$T/f.bin" "$PROXY" --no-daemon \
    --data-dir "$T/sd" >"$T/f.s.out" 2>"$T/f.s.err" || SEND_RC=$?
  t1=$(date +%s%N)
  ms=$(((t1 - t0) / 1000000))
  if [ "$SEND_RC" = 0 ]; then wait_for "$rpid" "$RECV_GRACE"; else wait_for "$rpid" 2; fi
  RECV_RC=$RC
  stop_proxy f
  kill -TERM "$fpid"
  wait_for "$fpid" 10
  [ "$SEND_RC" = 0 ] || { cat "$T/f.s.err" >&2; fail "f: send exit $SEND_RC"; }
  [ "$RECV_RC" = 0 ] || { tail -3 "$T/f.r.err" >&2; fail "f: recv exit $RECV_RC"; }
  cmp "$T/f.bin" "$T/f.in/f.bin" || fail "f: copy differs"
  grep -q 'trying TCP+TLS' "$T/f.s.err" || fail "f: no fallback message: $(cat "$T/f.s.err")"
  [ "$(pstat f up.pkts_in)" -gt 0 ] && [ "$(pstat f sent_up)" = 0 ] ||
    fail "f: QUIC not tried, or UDP got through"
  grep -Eq '^connections [1-9]' "$T/f.fwd.out" || fail "f: nothing connected over TCP"
  [ "$ms" -ge 2900 ] || fail "f: fell back after $ms ms, before the 3 s deadline"
  ok "f: UDP blocked: fell back to TCP+TLS, $((BIG / MIB)) MiB identical in $ms ms ($(pstat f up.pkts_in) QUIC datagrams dropped)"
}

# g: UDP to the proxy is dropped for its first 4 s (an outage from its
# start), and nothing listens on TCP at the proxy's port number (refused).
# The TCP attempt made at 3 s fails; the QUIC attempt, still running,
# completes after the outage (its Initial is resent on PTO) and carries the
# transfer: exit 0, copy identical, datagrams delivered by the proxy, no
# reconnect.
case_g() {
  xfer g "outage=4s@0s" "$((2 * MIB))"
  expect_ok g
  grep -q '"event":"fallback".*trying TCP+TLS' "$T/g.s.out" ||
    fail "g: no TCP attempt at 3 s: $(grep -v progress "$T/g.s.out")"
  [ "$(pstat g up.drop_outage)" -gt 0 ] || fail "g: the outage dropped nothing"
  [ "$(pstat g sent_up)" -gt 0 ] || fail "g: nothing went over UDP after the outage"
  grep -q '"event":"summary".*"reconnects":0' "$T/g.s.out" ||
    fail "g: the link reconnected: $(grep '"event":"summary"' "$T/g.s.out")"
  [ "$MS" -ge 3900 ] || fail "g: done in $MS ms, inside the 4 s outage"
  ok "g: UDP silent 4 s, TCP refused: the QUIC attempt went on and carried 2 MiB in $MS ms ($(pstat g up.drop_outage) datagrams dropped in the outage)"
}

# sjson NAME SIDE KEY: a number from NAME's summary event (SIDE s or r).
sjson() {
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("event") == "summary": print(e.get(sys.argv[2], -1)); break
else: print(-1)' "$T/$1.$2.out" "$3"
}

# Case h: packet FEC (lib/pfec) at 30 % loss each way, 50 ms RTT. The
# policy (auto) must turn it on: the sender sends parity packets and the
# receiver rebuilds lost packets from them, under QUIC.
case_h() {
  xfer h "delay=25ms,loss=30%,seed=3" $((12 * MIB)) --transport quic
  expect_ok h
  local par reb
  par=$(sjson h s pkt_parity_sent)
  reb=$(sjson h r pkts_rebuilt)
  [ "$par" -gt 0 ] || { show h; fail "h: no parity packets sent ($par)"; }
  [ "$reb" -gt 0 ] || { show h; fail "h: no packet rebuilt from parity ($reb)"; }
  ok "h: 30 % loss, 50 ms RTT: 12 MiB identical in $MS ms; $par parity packets sent, $reb packets rebuilt by the receiver"
}

# Case i: at 5 % loss packet FEC stays off (QUIC alone does better there:
# BENCHMARKS.md "Lossy link"), and with --packet-fec off none is sent even
# at 30 %.
case_i() {
  xfer i "delay=25ms,loss=5%,seed=2" $((8 * MIB)) --transport quic
  expect_ok i
  [ "$(sjson i s pkt_parity_sent)" = 0 ] || fail "i: parity packets at 5 % loss: $(sjson i s pkt_parity_sent)"
  xfer i2 "delay=25ms,loss=30%,seed=3" $((4 * MIB)) --transport quic --packet-fec off
  expect_ok i2
  [ "$(sjson i2 s pkt_parity_sent)" = 0 ] || fail "i2: parity packets with --packet-fec off"
  [ "$(sjson i2 r pkts_rebuilt)" = 0 ] || fail "i2: packets rebuilt with --packet-fec off"
  ok "i: no parity packets at 5 % loss (auto) nor at 30 % with --packet-fec off"
}

# Runs each case in a subshell (a failure ends that case only); reports
# pending cases without failing.
FAILED=
for c in $CASES; do
  declare -F "case_$c" >/dev/null || fail "unknown case '$c'"
  pending=0
  [[ " $PENDING " == *" $c "* ]] && pending=1
  if [ "$pending" = 1 ] && [ "${SFT_BADNET_ALL:-0}" != 1 ]; then
    echo "pending - $c (skipped; SFT_BADNET_ALL=1 runs it)"
    continue
  fi
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
      echo "pending - $c failed in $secs s (expected until its feature lands)"
    fi
  elif [ "$rc" != 0 ]; then
    echo "not ok - $c ($secs s)"
    FAILED="$FAILED $c"
  else
    echo "     ($c took $secs s)"
  fi
done
[ -z "$FAILED" ] || fail "cases failed:$FAILED"
