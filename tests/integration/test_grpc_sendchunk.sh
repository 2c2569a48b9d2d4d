#!/usr/bin/env bash
# gRPC SendChunk (issue 6 item 2) into a live receiving session: a
# receiving `sft daemon`, a slow one-shot `sft send` (its --json
# "connected" event names the session), and a gRPC client pushing the back
# half of the file's chunks into that session (grpc_sendchunk.py, which also
# checks the error statuses). The copy must be byte-identical and the
# sender must not have sent (beyond a few already on the wire) the chunks
# taken from gRPC: they were acknowledged to it.
. "$(dirname "$0")/lib.sh"
command -v protoc >/dev/null || fail "protoc missing (scripts/install-deps)"
CS=262144
NCH=32
head -c $((CS * NCH)) /dev/urandom >"$T/f.bin"
"$SFT" hash --chunks --chunk-size "$CS" "$T/f.bin" >"$T/chunks.txt"

start_daemon r --set receive.accept_any=true
QP=$QPORT
[ -n "$QP" ] && [ -n "$GRPC" ] || { cat "$T/r.err" "$T/r.out"; fail "no QUIC or gRPC address"; }

# 8 MiB at 4 Mbit/s: about 16 s if sent alone over QUIC.
"$SFT" send "$T/f.bin" "127.0.0.1:$QP" --no-daemon --json --bwlimit 4M \
  --chunk-size "$CS" --fec off --data-dir "$T/s" >"$T/s.out" 2>"$T/s.err" &
S=$!; PIDS+=("$S")
SID=
for _ in $(seq 1 200); do
  SID=$(sed -n 's/.*"event":"connected".*"session_id":"\([0-9a-f]*\)".*/\1/p' "$T/s.out" 2>/dev/null || true)
  [ -n "$SID" ] && break; sleep 0.05
done
[ -n "$SID" ] || { cat "$T/s.err"; fail "no session id from the sender"; }
# wait until the receiver has accepted the file (progress moving)
for _ in $(seq 1 200); do
  grep -q '"event":"progress".*"bytes_done":[1-9]' "$T/s.out" && break; sleep 0.05
done
/usr/bin/python3 "$(dirname "$0")/grpc_sendchunk.py" "$GRPC" "$(cat "$T/r/api.token")" \
  "$SID" "$T/f.bin" "$T/chunks.txt" >"$T/py.out" 2>&1 || { cat "$T/py.out"; fail "gRPC checks"; }
wait_exit "$S"; [ "$RC" = 0 ] || { cat "$T/s.err"; fail "send exited $RC"; }
for _ in $(seq 1 100); do [ -e "$T/r/downloads/f.bin" ] && break; sleep 0.05; done
cmp "$T/f.bin" "$T/r/downloads/f.bin" || fail "copy differs"
SENT=$(sed -n 's/.*"event":"summary".*"chunks_sent":\([0-9]*\).*/\1/p' "$T/s.out")
ACC=$(sed -n 's/^accepted=\([0-9]*\)$/\1/p' "$T/py.out")
# Chunks taken from gRPC are acknowledged to the sender, which then drops
# its own queued copies (send.c flush_sendq): at most a few cross twice
# (already on the wire when the ACK came).
[ -n "$SENT" ] && [ $((SENT + ACC)) -le $((NCH + 4)) ] ||
  fail "the sender sent $SENT of $NCH chunks although $ACC came over gRPC"
ok "SendChunk: $(cat "$T/py.out"); the QUIC sender sent $SENT of $NCH chunks; byte-identical; error statuses right"
