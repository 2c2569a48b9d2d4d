#!/bin/bash
# Reconnect and resume within a session (issue 4 item 6, issue 5 item 4):
#  1. an outage longer than the QUIC idle timeout (netsim black hole): both
#     sides drop the connection; the sender reconnects with backoff, the
#     receiver kept the session (linger) and answers the re-offer with its
#     bitmap, so only chunks that were in flight cross the wire again;
#  2. the receiver is killed (-9) and restarted: the sender learns it at once
#     (stateless reset derived from the node key), reconnects and completes;
#  3. --retries 0 and a receiver that stays away: a clear error, exit != 0.
. "$(dirname "$0")/lib.sh"
NETSIM="${SFT_BUILD_DIR:?}/sft-netsim"
export SFT_IDLE_TIMEOUT_MS=2000

wait_listen() { # file -> prints ADDR:PORT
  for _ in $(seq 200); do
    if grep -q '^listening ' "$1" 2>/dev/null; then
      awk '/^listening /{print $2; exit}' "$1"; return 0
    fi
    sleep 0.05
  done
  fail "no listening line in $1"
}
# wait_progress FILE PCT: until the sender's JSON progress passes PCT %.
wait_progress() {
  for _ in $(seq 600); do
    if awk -v p="$2" -F'[:,]' '/"event":"progress"/ {
         for (i = 1; i < NF; i++) { if ($i == "\"bytes_done\"") d = $(i+1);
                                    if ($i == "\"bytes_total\"") t = $(i+1) }
         if (t > 0 && d * 100 >= p * t) found = 1 }
         END { exit !found }' "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  fail "the transfer never reached $2 % ($1)"
}
field() { sed -n "s/.*\"$2\":\([0-9a-z]*\).*/\1/p" "$1" | tail -n 1; }
# start_proxy NAME: a clean netsim proxy to the receiver on $PORT; sets
# PROXY (its pid, SIGUSR1 toggles a black hole) and PP (its address).
start_proxy() {
  "$NETSIM" proxy --listen 127.0.0.1:0 --to "127.0.0.1:$PORT" \
    >"$T/$1.out" 2>"$T/$1.err" & PROXY=$!
  PIDS+=("$PROXY")
  PP=$(wait_listen "$T/$1.out")
}
# blackhole_until_down SENDER_OUT: black hole on, until the sender's
# link_down event.
blackhole_until_down() {
  kill -USR1 "$PROXY"
  for _ in $(seq 200); do grep -q '"event":"link_down"' "$1" && return 0; sleep 0.05; done
  fail "the sender never noticed the outage ($1)"
}

head -c $((24 << 20)) /dev/urandom >"$T/big"
mkdir -p "$T/in" "$T/in2"

# ---- 1. outage longer than the idle timeout ---------------------------------
start_recv r1 --dir "$T/in" --once --accept-any --data-dir "$T/rd" --json
start_proxy proxy
"$SFT" send "$T/big" "$PP" --json --bwlimit 60M --transport quic \
  --data-dir "$T/sd" >"$T/s1.out" 2>"$T/s1.err" & S=$!
PIDS+=("$S")
wait_progress "$T/s1.out" 50
blackhole_until_down "$T/s1.out"
for _ in $(seq 200); do grep -q "waiting up to" "$T/r1.out" && break; sleep 0.05; done
grep -q "waiting up to" "$T/r1.out" || fail "the receiver did not keep the session"
kill -USR1 "$PROXY"                       # black hole off
wait_exit "$S"; [ "$RC" = 0 ] || { cat "$T/s1.err"; fail "send after outage exited $RC"; }
wait_exit "$RECV_PID"; [ "$RC" = 0 ] || { cat "$T/r1.err"; fail "recv exited $RC"; }
cmp "$T/big" "$T/in/big" || fail "file differs after the outage"
RECON=$(field "$T/s1.out" reconnects); SENT=$(field "$T/s1.out" chunks_sent)
[ "${RECON:-0}" -ge 1 ] || fail "no reconnect counted"
# 24 chunks of 1 MiB; only the in-flight window (the sender holds at most
# 8 MiB + 2 BDP of chunks: <= 10 here) may cross twice. Resending the acked
# ones too would be >= 24 + 12 (50 % were acked before the outage).
[ "$SENT" -le 34 ] || fail "$SENT chunks sent for 24: acked chunks were resent"
ok "outage longer than the idle timeout: reconnected ($RECON), $SENT chunk sends for 24, byte-identical"
kill "$PROXY" 2>/dev/null || true

# ---- 2. receiver killed and restarted -----------------------------------------
start_recv r2 --dir "$T/in2" --accept-any --data-dir "$T/rd" --json
P2=$PORT
"$SFT" send "$T/big" "127.0.0.1:$P2" --json --bwlimit 60M --transport quic \
  --data-dir "$T/sd" >"$T/s2.out" 2>"$T/s2.err" & S=$!
PIDS+=("$S")
wait_progress "$T/s2.out" 30
kill -9 "$RECV_PID"; wait "$RECV_PID" 2>/dev/null || true
[ ! -e "$T/in2/big" ] || fail "a partial file appeared under its final name"
"$SFT" recv --listen "127.0.0.1:$P2" --dir "$T/in2" --once --accept-any \
  --data-dir "$T/rd" --json >"$T/r3.out" 2>"$T/r3.err" & R3=$!
PIDS+=("$R3")
wait_exit "$S"; [ "$RC" = 0 ] || { cat "$T/s2.err"; fail "send after receiver restart exited $RC"; }
wait_exit "$R3"; [ "$RC" = 0 ] || { cat "$T/r3.err"; fail "restarted recv exited $RC"; }
cmp "$T/big" "$T/in2/big" || fail "file differs after the receiver restart"
[ "$(field "$T/s2.out" reconnects)" -ge 1 ] || fail "no reconnect counted"
ok "receiver killed -9 and restarted: the sender reconnected and completed, byte-identical"

# ---- 3. a receiver that stays away ----------------------------------------------
start_recv r4 --dir "$T/in2" --accept-any --data-dir "$T/rd" --overwrite --json
"$SFT" send "$T/big" "127.0.0.1:$PORT" --json --bwlimit 60M --transport quic \
  --retries 2 --data-dir "$T/sd" >"$T/s4.out" 2>"$T/s4.err" & S=$!
PIDS+=("$S")
wait_progress "$T/s4.out" 20
kill -9 "$RECV_PID"; wait "$RECV_PID" 2>/dev/null || true
wait_exit "$S"
[ "$RC" != 0 ] || fail "send succeeded without a receiver"
grep -q "gave up after 2 attempts" "$T/s4.err" "$T/s4.out" || { cat "$T/s4.err"; fail "no clear give-up message"; }
ok "receiver gone for good: clear error after --retries 2 (exit $RC)"

# ---- 4. an outage after the COMPLETE went, before its echo ----------------------
# A file within the sender's memory budget is read at once, so its COMPLETE
# goes early (every digest known), long before the last chunk is acked; the
# outage then makes the sender offer it again. The re-offer failed to encode
# (its manifest carried the COMPLETE's root without HAS_ROOT: MALFORMED) and
# the session ended with "cannot send the offer".
head -c $((4 << 20)) /dev/urandom >"$T/small"
mkdir -p "$T/in3"
start_recv r5 --dir "$T/in3" --once --accept-any --data-dir "$T/rd" --json
start_proxy proxy5
"$SFT" send "$T/small" "$PP" --json --bwlimit 8M --transport quic \
  --data-dir "$T/sd" >"$T/s5.out" 2>"$T/s5.err" & S=$!
PIDS+=("$S")
wait_progress "$T/s5.out" 25
blackhole_until_down "$T/s5.out"
kill -USR1 "$PROXY"                       # black hole off
wait_exit "$S"; [ "$RC" = 0 ] || { cat "$T/s5.err"; fail "4: send after outage exited $RC"; }
wait_exit "$RECV_PID"; [ "$RC" = 0 ] || { cat "$T/r5.err"; fail "4: recv exited $RC"; }
cmp "$T/small" "$T/in3/small" || fail "4: file differs after the outage"
[ "$(field "$T/s5.out" reconnects)" -ge 1 ] || fail "4: no reconnect counted"
ok "outage after the early COMPLETE: re-offered, reconnected and completed, byte-identical"
kill "$PROXY" 2>/dev/null || true
