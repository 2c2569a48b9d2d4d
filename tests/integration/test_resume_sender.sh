#!/bin/bash
# Crash-safe resume of a SENDING daemon (issue 4 items 1 and 6): a
# transfer handed to `sft daemon` (REST) is interrupted by SIGKILL of the
# sending daemon at random moments, and once by SIGTERM, and the daemon is
# started again each time. The restarted daemon finds the transfer in its
# store (its request, its session id and the geometry of every file it had
# offered) and continues it by itself under the same transfer id; the
# receiving daemon answers the re-offer with the chunks it holds. Checks:
# byte-identical copy, the same id completes, PRAGMA integrity_check ok
# after each kill, nothing under its final name before verification, and
# the receiver's count of chunks that arrived again after it had verified
# them: at most the in-flight window per interruption (chunks verified but
# not yet acknowledged when the sender died). SFT_RESUME_KILLS (default 10, as CI runs it)
# sets the number of SIGKILLs; `make soak` runs more.
. "$(dirname "$0")/lib.sh"
export SFT_IDLE_TIMEOUT_MS=2000
KILLS=${SFT_RESUME_KILLS:-10}
MIB=${SFT_RESUME_MIB:-48}
head -c $((MIB << 20)) /dev/urandom >"$T/big"

# The receiving daemon.
start_daemon r --set receive.accept_any=true
RQP=$QPORT
[ -n "$RQP" ] || { cat "$T/r.err"; fail "no QUIC port for the receiving daemon"; }

start_sender() { # N: (re)starts the sending daemon (data dir $T/s); SPID, API
  DDIR=s start_daemon "s$1" --set transfer.per_transfer_bwlimit=80M
  SPID=$DPID
}
prog() { # prints "STATE BYTES_DONE" of the transfer
  curl -s -H "Authorization: Bearer $(cat "$T/s/api.token")" \
    "http://$API/api/transfer/$ID/progress" |
    /usr/bin/python3 -c 'import json,sys
try: j=json.load(sys.stdin); print(j.get("state","?"), j.get("bytes_done",0))
except Exception: print("? 0")'
}

start_sender 0
ID=$(curl -s -H "Authorization: Bearer $(cat "$T/s/api.token")" \
  -H 'Content-Type: application/json' \
  -d "{\"paths\":[\"$T/big\"],\"peer\":\"127.0.0.1:$RQP\"}" \
  "http://$API/api/transfer/send" | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p')
[ -n "$ID" ] || fail "no transfer id"

MAXB=0 # the most bytes_done seen: a restarted daemon reports 0 until the
       # receiver has answered its re-offer
interrupt() { # SIGNAL N: after 1..4 MiB of new progress
  local target st b
  target=$(( MAXB + ((RANDOM % 4) + 1) * 1048576 ))
  for _ in $(seq 1 600); do
    read -r st b < <(prog)
    [ "$st" = Completed ] && return 1
    [ "$b" -gt "$MAXB" ] 2>/dev/null && MAXB=$b
    [ "$b" -ge "$target" ] 2>/dev/null && break
    sleep 0.05
  done
  kill "-$1" "$SPID"; wait "$SPID" 2>/dev/null || true
  [ ! -e "$T/r/downloads/big" ] || cmp -s "$T/big" "$T/r/downloads/big" ||
    fail "interruption $2: a file under its final name before verification"
  [ "$(sqlite3 "$T/s/sft.db" 'PRAGMA integrity_check')" = ok ] ||
    fail "interruption $2: integrity_check of the sender's store"
  start_sender "$2"
  return 0
}
n=0
for k in $(seq 1 "$KILLS"); do
  interrupt 9 "$k" || break
  n=$((n + 1))
done
interrupt TERM "$((KILLS + 1))" && n=$((n + 1))
grep -q "interrupted: resumes on the next start" "$T/s$KILLS.err" ||
  [ "$n" -le "$KILLS" ] || fail "SIGTERM did not record the transfer as interrupted"

st=
for _ in $(seq 1 1200); do
  read -r st _ < <(prog)
  [ "$st" = Completed ] || [ "$st" = Failed ] && break
  sleep 0.05
done
[ "$st" = Completed ] || { tail -5 "$T"/s*.err; fail "transfer $ID: $st after restarts"; }
grep -q "transfer $ID resumed" "$T/s1.err" || fail "the restarted daemon did not resume $ID"
cmp "$T/big" "$T/r/downloads/big" || fail "file differs after $n interruptions"
[ "$(sqlite3 "$T/s/sft.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check at the end"
DUP=$(sed -n 's/.*received big (.*, \([0-9]*\) duplicates.*/\1/p' "$T/r.err" | tail -n 1)
[ -n "$DUP" ] || { cat "$T/r.err"; fail "the receiver did not report the file"; }
LIMIT=$((n * 16))
[ "$DUP" -le "$LIMIT" ] || fail "$DUP verified chunks crossed the wire again after $n interruptions (limit $LIMIT)"
echo "sender_interruptions=$n"
echo "chunks_again_after_verified=$DUP"
ok "sending daemon interrupted $n times ($KILLS x SIGKILL, SIGTERM): resumed by itself each time, byte-identical, $DUP chunks arrived again after being verified (bound $LIMIT), integrity ok"
