#!/bin/bash
# Crash-safe resume of a receiving daemon (issue 4 item 6): the receiving
# `sft daemon` is killed with SIGKILL at random moments during a transfer
# and started again on the same port. Each time the sender reconnects by
# itself and the daemon resumes the file from its SQLite store: chunks are
# acknowledged only once committed (<= 100 ms batches), so nothing the
# sender saw acknowledged crosses the wire again; only the chunks in flight
# at the kill do. Checks: byte-identical, the number of chunk sends bounded
# by chunks + kills x in-flight window, no file under its final name before
# verification, PRAGMA integrity_check ok. SFT_RESUME_KILLS (default 10, as CI runs it)
# sets the number of kills (CI: 10; `make soak`: 100).
. "$(dirname "$0")/lib.sh"
export SFT_IDLE_TIMEOUT_MS=2000
KILLS=${SFT_RESUME_KILLS:-10}
MIB=${SFT_RESUME_MIB:-48}
head -c $((MIB << 20)) /dev/urandom >"$T/big"
QP=0
start_daemon() { # N
  "$SFT" daemon --data-dir "$T/d" --set "network.quic_bind_addr=127.0.0.1:$QP" \
    --set api.api_bind_addr=127.0.0.1:0 --set api.grpc_bind_addr=127.0.0.1:0 \
    --set receive.accept_any=true >"$T/daemon$1.out" 2>"$T/daemon$1.err" &
  DPID=$!; PIDS+=("$DPID")
  for _ in $(seq 1 200); do
    grep -q "receiving on" "$T/daemon$1.err" 2>/dev/null && break
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.05
  done
  QP=$(sed -n 's/.*receiving on .*:\([0-9]*\) into.*/\1/p' "$T/daemon$1.err")
  [ -n "$QP" ] || { cat "$T/daemon$1.err"; fail "daemon $1 did not start"; }
}
done_bytes() { # the sender's last reported bytes_done
  sed -n 's/.*"event":"progress".*"bytes_done":\([0-9]*\).*/\1/p' "$T/s.out" | tail -n 1
}

start_daemon 0
"$SFT" send "$T/big" "127.0.0.1:$QP" --no-daemon --json --bwlimit 80M \
  --transport quic --data-dir "$T/sd" >"$T/s.out" 2>"$T/s.err" & S=$!
PIDS+=("$S")
for k in $(seq 1 "$KILLS"); do
  # a random moment: after the transfer has moved on by 1..4 MiB
  target=$(( $(done_bytes || echo 0) + ((RANDOM % 4) + 1) * 1048576 ))
  for _ in $(seq 1 400); do
    [ "$(done_bytes || echo 0)" -ge "$target" ] 2>/dev/null && break
    kill -0 "$S" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$S" 2>/dev/null || break
  kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true
  [ ! -e "$T/d/downloads/big" ] || fail "kill $k: the file is under its final name before verification"
  [ "$(sqlite3 "$T/d/sft.db" 'PRAGMA integrity_check')" = ok ] || fail "kill $k: integrity_check"
  start_daemon "$k"
done
wait_exit "$S"; [ "$RC" = 0 ] || { cat "$T/s.err"; fail "send exited $RC"; }
cmp "$T/big" "$T/d/downloads/big" || fail "file differs after $KILLS kills"
SENT=$(sed -n 's/.*"event":"summary".*"chunks_sent":\([0-9]*\).*/\1/p' "$T/s.out")
RECON=$(sed -n 's/.*"event":"summary".*"reconnects":\([0-9]*\).*/\1/p' "$T/s.out")
# 48 chunks; each kill may cost the chunks in flight (the sender holds at
# most 8 MiB + 2 BDP of chunks: <= 16 here). Without resume every kill
# would cost everything received so far.
LIMIT=$((MIB + KILLS * 16))
[ "$SENT" -le "$LIMIT" ] || fail "$SENT chunk sends for $MIB chunks after $KILLS kills (limit $LIMIT)"
[ "$RECON" -ge 1 ] || fail "no reconnect counted"
[ "$(sqlite3 "$T/d/sft.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check at the end"
ok "receiving daemon killed -9 $KILLS times: resumed each time, $SENT chunk sends for $MIB chunks (resent $((SENT - MIB)), bound $LIMIT), byte-identical, integrity ok"
