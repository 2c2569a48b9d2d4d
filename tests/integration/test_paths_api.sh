#!/usr/bin/env bash
# Network paths through the daemon's API, end to end (one daemon as sender):
#   3  "peer" takes bracketed IPv6: a receiver on [::1] (`sft recv --listen
#      '[::1]:0'`) gets a byte-identical copy from the daemon; malformed
#      peer lists (no port, unclosed bracket, empty entry, duplicate) -> 400
#   4  multi-path: "peer" = "P1,P2", two sft-netsim proxies (20 Mbit/s each)
#      in front of one `sft recv`: both paths usable (active, or degraded:
#      a proxy's queue overflowing in BBR's start-up can measure 20 % loss)
#      and carrying chunks at once; GET /api/transfer/{id} network_paths has
#      2 entries with the documented fields; `sft status` prints one "path N"
#      line per path; /metrics has path_state and path_delivery_rate_bps
#      for transfer="ID", sft_path_rtt_seconds / sft_path_loss_ratio for
#      path="ID/PEER",
#      path="127.0.0.1:PORT" and passes promtool; /ws gets one initial
#      PathUpdate per path (previous null) and, after P1 is blackholed
#      (SIGUSR1), a PathUpdate "failed" for path 0 within 10 s (GET and
#      path_state agree); the copy is byte-identical
#   7  pause sends no chunk bytes on the wire: daemon -> sft-netsim (20
#      Mbit/s, queue 100 ms) -> ctl_udpcount.py (a counting relay) -> `sft
#      recv`; paused once it moves; the bytes forwarded toward the receiver
#      from 0.5 s to 2.5 s after the pause (the first 0.5 s drain what the
#      proxy had queued) must be < 20 KB, printed as paused_bytes_2s=N; then
#      resumed: completes byte-identical
# ASan build (SFT_SANITIZE=ON in the build's CMakeCache.txt): half the rates
# and sizes, as test_multipath.sh. Environment: SFT_PATHS_CASES (default
# "3 4 7") picks cases. SFT_KEEP=1 keeps the temporary directory.
. "$(dirname "$0")/lib.sh"

CASES=${SFT_PATHS_CASES:-"3 4 7"}
BUILD=${SFT_BUILD_DIR:-$(dirname "$SFT")}
NETSIM=$BUILD/sft-netsim
[ -x "$NETSIM" ] || fail "no $NETSIM (build the sft_netsim target)"
HERE=$(cd "$(dirname "$0")" && pwd)
MIB=1048576
RATE=20
SIZE=$((16 * MIB))
ASAN=0
if grep -Eqi '^SFT_SANITIZE:BOOL=(ON|1|TRUE|YES)$' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  ASAN=1
  RATE=10
  SIZE=$((8 * MIB))
fi
# A receiver (--once) exits when its session has no connection left; a
# blackholed path's connection would linger for the QUIC idle timeout (30 s):
# 3 s here (engine.c's test knob), as test_multipath.sh.
export SFT_IDLE_TIMEOUT_MS=3000

# send FILE PEER: POST /api/transfer/send; sets XID.
send() {
  post /api/transfer/send "{\"paths\":[\"$1\"],\"peer\":\"$2\"}"
  [ "$HTTP" = 202 ] || fail "send $1 to $2: $HTTP $(cat "$T/body")"
  XID=$(jq_ 'j["id"]')
}
# wait_bytes ID N: waits (at most 20 s) until bytes_done >= N.
wait_bytes() {
  for _ in $(seq 1 400); do
    req GET "/api/transfer/$1/progress"
    [ "$(jq_ "j['bytes_done'] >= $2")" = True ] && return 0
    sleep 0.05
  done
  fail "transfer $1 did not reach $2 bytes: $(cat "$T/body")"
}
# wait_recv PID NAME: the receiver exits 0 within 20 s.
wait_recv() {
  local i
  for ((i = 0; i < 400; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill "$1" 2>/dev/null && echo "killed receiver $2" >&2
  RC=0
  wait "$1" || RC=$?
  [ "$RC" = 0 ] || { tail -5 "$T/$2.err" >&2; fail "receiver $2 exit $RC"; }
}
# start_proxy NAME SPEC TO_PORT: sets PX (pid) and PADDR (ADDR:PORT).
start_proxy() {
  local n=$1
  "$NETSIM" proxy --listen 127.0.0.1:0 --to "127.0.0.1:$3" --spec "$2" \
    --stats-json "$T/$n.stats.json" >"$T/$n.p.out" 2>"$T/$n.p.err" &
  PX=$!
  PIDS+=("$PX")
  PADDR=
  for _ in $(seq 1 200); do
    PADDR=$(awk '/^listening /{print $2; exit}' "$T/$n.p.out" 2>/dev/null || true)
    [ -n "$PADDR" ] && break
    kill -0 "$PX" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$PADDR" ] || { cat "$T/$n.p.err" >&2; fail "proxy $n did not start"; }
}

start_daemon d
ok "daemon up (API $API)"

case_3() {
  local port rpid bad
  mkdir -p "$T/in3"
  "$SFT" recv --listen '[::1]:0' --dir "$T/in3" --once --accept-any \
    --data-dir "$T/r3" >"$T/r3.out" 2>"$T/r3.err" &
  rpid=$!
  PIDS+=("$rpid")
  port=
  for _ in $(seq 1 200); do
    port=$(sed -n 's/^listening on \[::1\]:\([0-9][0-9]*\)$/\1/p' "$T/r3.out" 2>/dev/null || true)
    [ -n "$port" ] && break
    kill -0 "$rpid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$T/r3.out" "$T/r3.err" >&2; fail "3: sft recv --listen '[::1]:0' did not start"; }
  head -c $((2 * MIB + 7)) /dev/urandom >"$T/v6.bin"
  send "$T/v6.bin" "[::1]:$port"
  [ "$(jq_ 'j["peer"]')" = "[::1]:$port" ] || fail "3: peer echoed as $(jq_ 'j["peer"]')"
  wait_state "$XID" 30 Completed Failed
  [ "$(state "$XID")" = Completed ] || fail "3: transfer to [::1]: $(cat "$T/body")"
  wait_recv "$rpid" r3
  cmp "$T/v6.bin" "$T/in3/v6.bin" || fail "3: copy differs"
  jq_ 'j["network_paths"][0]["peer"]' | grep -q "^\[::1\]:$port$" ||
    fail "3: network_paths peer: $(jq_ 'j["network_paths"]')"
  for bad in '[::1]' "[::1:$port" "[::1]:$port," "127.0.0.1:$port,,127.0.0.1:1" \
    "127.0.0.1:$port,127.0.0.1:$port" "[::1]:0" "127.0.0.1:70000" ","; do
    post /api/transfer/send "{\"paths\":[\"$T/v6.bin\"],\"peer\":\"$bad\"}"
    [ "$HTTP" = 400 ] && [ "$(jq_ 'j["error"]["code"]')" = invalid_field ] ||
      fail "3: peer '$bad': $HTTP $(cat "$T/body")"
  done
  ok "3: sft recv on [::1]; the daemon sends to \"[::1]:$port\": identical copy; malformed peer lists -> 400"
}

case_4() {
  local rpid pa pb px_a px_b id t_bh st np lines both
  head -c "$SIZE" /dev/urandom >"$T/mp.bin"
  mkdir -p "$T/in4"
  start_recv r4 --dir "$T/in4" --once --accept-any --data-dir "$T/r4"
  rpid=$RECV_PID
  start_proxy pa "rate=${RATE}mbit,delay=10ms" "$PORT"
  px_a=$PX pa=$PADDR
  start_proxy pb "rate=${RATE}mbit,delay=10ms" "$PORT"
  px_b=$PX pb=$PADDR
  /usr/bin/python3 "$HERE/ctl_ws.py" "$API" "$TOK" "$T/ws4.jsonl" "$T/ws4.ready" 90 &
  PIDS+=("$!")
  for _ in $(seq 1 200); do [ -e "$T/ws4.ready" ] && break; sleep 0.05; done
  [ -e "$T/ws4.ready" ] || fail "4: WebSocket client did not connect"
  send "$T/mp.bin" "$pa,$pb"
  id=$XID
  # Both paths up and carrying chunks.
  both=0
  for _ in $(seq 1 400); do
    req GET "/api/transfer/$id"
    [ "$(jq_ 'len(j["network_paths"]) == 2 and all(p["up"] and p["state"] in ("active", "degraded") and p["bytes_sent"] > 0 for p in j["network_paths"])')" = True ] && both=1 && break
    sleep 0.05
  done
  [ "$both" = 1 ] || fail "4: both paths never usable and carrying chunks together: $(jq_ 'j["network_paths"]')"
  cp "$T/body" "$T/get4.json"
  python3 - "$T/get4.json" "$pa" "$pb" <<'PY' || fail "4: network_paths: $(cat "$T/get4.json")"
import json, sys
j = json.load(open(sys.argv[1]))
np = j["network_paths"]
assert len(np) == 2, np
keys = {"path", "peer", "state", "up", "rtt_ms", "loss", "rate_bps", "bytes_sent", "state_changes"}
for i, p in enumerate(np):
    assert set(p) == keys, sorted(p)
    assert p["path"] == i and p["peer"] == sys.argv[2 + i], p
    assert p["state"] in ("active", "degraded") and p["up"] is True, p
    assert isinstance(p["rtt_ms"], (int, float)) and 15 <= p["rtt_ms"] < 2000, p  # 2 x 10 ms delay
    assert p["loss"] is None or (isinstance(p["loss"], float) and 0 <= p["loss"] <= 1), p
    for k in ("rate_bps", "bytes_sent", "state_changes"):
        assert isinstance(p[k], int) and p[k] >= 0, (k, p)
    assert p["bytes_sent"] > 0, p
assert j["state"] == "Transferring", j["state"]
PY
  # sft status: one "path N" line per path.
  "$SFT" status "$id" --api "$API" --data-dir "$T/d" >"$T/status4.out" 2>&1 || fail "4: sft status: $(cat "$T/status4.out")"
  lines=$(grep -Ec '^ *path [12] ' "$T/status4.out" || true)
  [ "$lines" = 2 ] && grep -Eq "path 1 +$pa +(active|degraded) " "$T/status4.out" &&
    grep -Eq "path 2 +$pb +(active|degraded) " "$T/status4.out" || fail "4: sft status: $(cat "$T/status4.out")"
  # /metrics: the per-path series, promtool-valid.
  req GET /metrics
  cp "$T/body" "$T/metrics4.txt"
  for p in "$pa" "$pb"; do
    grep -Eq "^path_state\{transfer=\"$id\",path=\"$p\"\} [01]$" "$T/metrics4.txt" || fail "4: path_state for $p: $(grep '^path_' "$T/metrics4.txt")"
    grep -Eq "^path_delivery_rate_bps\{transfer=\"$id\",path=\"$p\"\} [0-9.e+-]+$" "$T/metrics4.txt" ||
      fail "4: path_delivery_rate_bps for $p: $(grep 'path' "$T/metrics4.txt")"
    # RTT: the standard family, sft_path_rtt_seconds{path="ID/PEER"}
    # (docs/internals/daemon.md).
    grep -Eq "^sft_path_rtt_seconds\{path=\"$id/$p\"\} [0-9.e+-]+$" "$T/metrics4.txt" ||
      fail "4: no RTT series for $p: $(grep 'path' "$T/metrics4.txt")"
  done
  RTT_FORM=$(grep -Eo '^(sft_)?path_rtt_seconds' "$T/metrics4.txt" | head -1)
  # Loss: once judged (enough packets); either form, for some path.
  grep -Eq "^sft_path_loss_ratio\{path=\"$id/" "$T/metrics4.txt" ||
    echo "note - 4: no loss series yet (loss not judged)"
  if command -v promtool >/dev/null; then
    promtool check metrics <"$T/metrics4.txt" >"$T/promtool4.out" 2>&1 || { cat "$T/promtool4.out" >&2; fail "4: promtool"; }
  fi
  # Blackhole path A.
  t_bh=$EPOCHREALTIME
  kill -USR1 "$px_a"
  st=
  for _ in $(seq 1 200); do
    st=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("type") == "PathUpdate" and e["id"] == sys.argv[2] and e["path"] == 0 \
       and e["state"] == "failed" and e["_t"] > float(sys.argv[3]):
        print("%.2f" % (e["_t"] - float(sys.argv[3]))); break' "$T/ws4.jsonl" "$id" "$t_bh")
    [ -n "$st" ] && break
    sleep 0.05
  done
  [ -n "$st" ] || fail "4: no PathUpdate failed for path 0 within 10 s of the blackhole: $(grep PathUpdate "$T/ws4.jsonl")"
  req GET "/api/transfer/$id"
  np=$(jq_ '[p["state"] for p in j["network_paths"]]')
  if [ "$(jq_ 'j["state"]')" != Completed ]; then
    [ "$(jq_ 'j["network_paths"][0]["state"]')" = failed ] || fail "4: GET after the failed event: $np"
    req GET /metrics
    grep -q "^path_state{transfer=\"$id\",path=\"$pa\"} 2$" "$T/body" || fail "4: path_state of the blackholed path: $(grep "^path_state" "$T/body")"
  fi
  wait_state "$id" 45 Completed Failed
  [ "$(state "$id")" = Completed ] || fail "4: transfer: $(cat "$T/body")"
  wait_recv "$rpid" r4
  cmp "$T/mp.bin" "$T/in4/mp.bin" || fail "4: copy differs"
  # The WebSocket events.
  sleep 0.3 # trailing events of the end (throttled messages: 100 ms)
  python3 - "$T/ws4.jsonl" "$id" "$pa" "$pb" <<'PY' || fail "4: PathUpdate events: $(grep PathUpdate "$T/ws4.jsonl")"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
pu = [e for e in evs if e.get("type") == "PathUpdate" and e["id"] == sys.argv[2]]
for i in (0, 1):
    mine = [e for e in pu if e["path"] == i]
    assert mine, ("no PathUpdate for path", i)
    first = mine[0]
    assert first["previous"] is None, first
    assert first["peer"] == sys.argv[3 + i], first
    for a, b in zip(mine, mine[1:]):
        assert b["previous"] == a["state"] and b["state"] != a["state"], (a, b)
    for e in mine:
        assert e["state"] in ("active", "degraded", "failed"), e
        for k in ("up", "rtt_ms", "loss", "rate_bps", "bytes_sent", "ts"):
            assert k in e, (k, e)
assert any(e["path"] == 0 and e["state"] == "failed" for e in pu), pu
assert any(e["type"] == "TransferCompleted" and e["id"] == sys.argv[2] for e in evs)
print("PathUpdate per path:", [len([e for e in pu if e["path"] == i]) for i in (0, 1)])
PY
  kill -TERM "$px_a" "$px_b"
  wait "$px_a" "$px_b" 2>/dev/null || true
  [ "$(jq_ 'j["up"]["drop_outage"]' "$T/pa.stats.json")" -gt 0 ] || fail "4: the blackhole dropped nothing"
  [ "$(jq_ 'j["up"]["bytes_out"]' "$T/pb.stats.json")" -gt $((SIZE / 4)) ] || fail "4: path B carried little"
  ok "4: two paths (${RATE} Mbit/s each): network_paths x2, sft status 2 path lines, per-path metrics (RTT as $RTT_FORM; promtool ok), PathUpdate initial x2 and failed $st s after the blackhole; identical copy"
}

case_7() {
  local rpid cpid id relay b0 b1 b2 done0 done1 w0
  head -c "$SIZE" /dev/urandom >"$T/p.bin"
  mkdir -p "$T/in7"
  start_recv r7 --dir "$T/in7" --once --accept-any --data-dir "$T/r7"
  rpid=$RECV_PID
  /usr/bin/python3 "$HERE/ctl_udpcount.py" 0 "$PORT" "$T/count.json" >"$T/count.out" 2>"$T/count.err" &
  cpid=$!
  PIDS+=("$cpid")
  relay=
  for _ in $(seq 1 200); do
    relay=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\)$/\1/p' "$T/count.out" 2>/dev/null || true)
    [ -n "$relay" ] && break
    sleep 0.05
  done
  [ -n "$relay" ] || { cat "$T/count.err" >&2; fail "7: counting relay did not start"; }
  start_proxy p7 "rate=${RATE}mbit,delay=10ms,queue=100ms" "$relay"
  # count: the bytes the relay has forwarded toward the receiver so far.
  count() {
    rm -f "$T/count.json"
    kill -USR1 "$cpid"
    for _ in $(seq 1 100); do
      [ -e "$T/count.json" ] && { jq_ 'j["up_bytes"]' "$T/count.json"; return 0; }
      sleep 0.01
    done
    fail "7: no counter from the relay"
  }
  send "$T/p.bin" "$PADDR"
  id=$XID
  wait_bytes "$id" $((2 * MIB))
  w0=$(count)
  post "/api/transfer/$id/pause" '{}'
  [ "$HTTP" = 200 ] || fail "7: pause: $HTTP $(cat "$T/body")"
  b0=$(count)
  sleep 0.5 # the proxy drains its queue (<= 100 ms of data)
  b1=$(count)
  req GET "/api/transfer/$id/progress"
  done0=$(jq_ 'j["bytes_done"]')
  sleep 2 # the measured window
  b2=$(count)
  req GET "/api/transfer/$id/progress"
  done1=$(jq_ 'j["bytes_done"]')
  [ "$(jq_ 'j["state"]')" = Paused ] || fail "7: state while paused: $(cat "$T/body")"
  echo "paused_bytes_2s=$((b2 - b1)) (first 0.5 s after the pause: $((b1 - b0)) bytes; before it: $w0 in total)"
  [ $((b2 - b1)) -lt 20000 ] || fail "7: $((b2 - b1)) bytes toward the receiver in 2 s while paused (>= 20 KB)"
  [ "$w0" -gt $((2 * MIB)) ] || fail "7: the counter saw only $w0 bytes before the pause"
  [ "$done0" = "$done1" ] || fail "7: bytes_done moved while paused: $done0 -> $done1"
  post "/api/transfer/$id/resume" '{}'
  [ "$HTTP" = 200 ] || fail "7: resume: $HTTP $(cat "$T/body")"
  wait_state "$id" 45 Completed Failed
  [ "$(state "$id")" = Completed ] || fail "7: transfer: $(cat "$T/body")"
  wait_recv "$rpid" r7
  cmp "$T/p.bin" "$T/in7/p.bin" || fail "7: copy differs"
  kill -TERM "$PX" "$cpid"
  ok "7: paused 2 s: $((b2 - b1)) bytes on the wire toward the receiver (< 20 KB); resumed: identical copy"
}

# shellcheck disable=SC2086 # CASES is a word list
run_cases $CASES
