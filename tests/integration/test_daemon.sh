#!/usr/bin/env bash
# sft daemon: configuration errors, REST API (auth, validation, routes),
# sending through the daemon with sft send / ls / status / pause / resume /
# cancel, receiving into its download directory, SIGTERM.
. "$(dirname "$0")/lib.sh"

# 1. A bad setting stops start-up with file, line and reason, exit 2.
printf '[transfer]\ndata_shards = 10\nparity_shards = 300\n' >"$T/bad.conf"
rc=0; "$SFT" daemon --config "$T/bad.conf" --data-dir "$T/d" 2>"$T/bad.err" || rc=$?
[ "$rc" = 2 ] || fail "bad config: exit $rc, want 2"
grep -q 'bad.conf:3' "$T/bad.err" || fail "no file:line: $(cat "$T/bad.err")"
rc=0; SFT_TRANSFER_MAX_RETRIES=abc "$SFT" daemon --data-dir "$T/d" 2>"$T/bad2.err" || rc=$?
[ "$rc" = 2 ] && grep -q SFT_TRANSFER_MAX_RETRIES "$T/bad2.err" || fail "bad env: $rc $(cat "$T/bad2.err")"
ok "invalid settings stop start-up with exit 2, naming file:line or variable"

# 2. Start the daemon on ephemeral ports.
"$SFT" daemon --data-dir "$T/d" --set network.quic_bind_addr=127.0.0.1:0 \
  --set api.api_bind_addr=127.0.0.1:0 --set api.grpc_bind_addr=127.0.0.1:0 \
  >"$T/daemon.out" 2>"$T/daemon.err" &
DPID=$!; PIDS+=("$DPID")
API=
for _ in $(seq 1 200); do
  API=$(sed -n 's/^api //p' "$T/daemon.out" 2>/dev/null || true)
  [ -n "$API" ] && break; sleep 0.05
done
[ -n "$API" ] || { cat "$T/daemon.err"; fail "daemon did not start"; }
QPORT=$(sed -n 's/.*receiving on .*:\([0-9]*\) into.*/\1/p' "$T/daemon.err")
TOK=$(cat "$T/d/api.token")
[ "$(stat -c %a "$T/d/api.token")" = 600 ] || fail "token mode"
ok "daemon up: API $API, QUIC port $QPORT, token 0600"

code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }
[ "$(code "http://$API/healthz")" = 200 ] || fail "healthz"
[ "$(code "http://$API/api/sessions")" = 401 ] || fail "no token must be 401"
[ "$(code -H 'Authorization: Bearer nope' "http://$API/api/sessions")" = 401 ] || fail "bad token"
AUTH=(-H "Authorization: Bearer $TOK")
[ "$(code "${AUTH[@]}" "http://$API/api/transfer/0123456789abcdef0123456789abcdef")" = 404 ] || fail "unknown id"
[ "$(code "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"paths":["/x"],"peer":"h:1","extra":1}' "http://$API/api/transfer/send")" = 400 ] || fail "unknown field"
grep -q extra "$T/body" || fail "400 does not name the field"
[ "$(code "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"paths":"x","peer":"h:1"}' "http://$API/api/transfer/send")" = 400 ] || fail "wrong type"
[ "$(code "${AUTH[@]}" -H 'Content-Type: application/json' -d '{bad json' "http://$API/api/transfer/send")" = 400 ] || fail "malformed json"
[ "$(code "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"paths":["relative"],"peer":"h:1"}' "http://$API/api/transfer/send")" = 400 ] || fail "relative path"
[ "$(code "${AUTH[@]}" "http://$API/api/metrics")" = 200 ] || fail "metrics"
ok "REST: 401 without/with a wrong token, 404 unknown id, 400 for bad JSON, unknown fields, wrong types"

# 3. sft send hands the transfer to the daemon; ls and status show it. A
#    WebSocket client on /ws sees its progress and completion.
/usr/bin/python3 - "$API" "$TOK" "$T/ws.events" <<'PY' &
import json, sys, time, websocket
api, tok, out = sys.argv[1:4]
try:
    websocket.create_connection("ws://%s/ws" % api, timeout=5)
    print("connected without a token", file=open(out, "w"))
    sys.exit(1)
except websocket.WebSocketBadStatusException as e:
    assert e.status_code == 401, e.status_code
ws = websocket.create_connection("ws://%s/ws" % api, timeout=30,
                                 header=["Authorization: Bearer " + tok])
open(out + ".ready", "w").close()
seen = []
deadline = time.time() + 60
while time.time() < deadline:
    ev = json.loads(ws.recv())
    seen.append(ev)
    if ev.get("type") in ("TransferCompleted", "TransferFailed"):
        break
json.dump(seen, open(out, "w"))
PY
WSPID=$!; PIDS+=("$WSPID")
for _ in $(seq 1 200); do [ -e "$T/ws.events.ready" ] && break; sleep 0.05; done
[ -e "$T/ws.events.ready" ] || fail "WebSocket client did not connect"
mkdir -p "$T/in"
head -c 20000003 /dev/urandom >"$T/f.bin"
start_recv r1 --dir "$T/in" --once --accept-any --data-dir "$T/r"
"$SFT" send "$T/f.bin" "127.0.0.1:$PORT" --data-dir "$T/d" --api "$API" \
  >"$T/s1.out" 2>"$T/s1.err" || { cat "$T/s1.err"; fail "send via daemon"; }
grep -q 'handed to the daemon' "$T/s1.err" || fail "not handed to the daemon"
wait_exit "$RECV_PID"
cmp "$T/f.bin" "$T/in/f.bin" || fail "copy differs"
"$SFT" ls --data-dir "$T/d" --api "$API" >"$T/ls" || fail "ls"
grep -q Completed "$T/ls" || fail "ls: $(cat "$T/ls")"
id=$(awk '{print $1; exit}' "$T/ls")
"$SFT" status "$id" --data-dir "$T/d" --api "$API" --json | python3 -c '
import json,sys; x=json.load(sys.stdin); assert x["state"]=="Completed" and x["percent"]==100.0, x' ||
  fail "status"
rc=0; "$SFT" status nothex --data-dir "$T/d" --api "$API" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "bad id: $rc"
wait "$WSPID" || fail "WebSocket client: $(cat "$T/ws.events" 2>/dev/null)"
python3 - "$T/ws.events" <<'PY' || fail "WebSocket events: $(cat "$T/ws.events")"
import json, sys
ev = json.load(open(sys.argv[1]))
kinds = [e["type"] for e in ev]
assert kinds[-1] == "TransferCompleted", kinds
assert "TransferProgress" in kinds and "NetworkEvent" in kinds, kinds
assert ev[-1]["bytes"] == 20000003, ev[-1]
PY
ok "sft send through the daemon, byte-identical; ls and status report it; /ws streams events (401 without token)"

# 4. Pause, resume and cancel through the API on a transfer slowed by netsim.
mkdir -p "$T/in2"
head -c 40000000 /dev/urandom >"$T/g.bin"
start_recv r2 --dir "$T/in2" --once --accept-any --data-dir "$T/r"
NETSIM=${SFT_BUILD_DIR:-$(dirname "$SFT")}/sft-netsim
"$NETSIM" proxy --listen 127.0.0.1:0 --to "127.0.0.1:$PORT" --spec rate=40mbit,queue=100ms \
  >"$T/ns.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  VIA=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$T/ns.out" 2>/dev/null || true)
  [ -n "$VIA" ] && break; sleep 0.05
done
out=$(curl -s "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d "{\"paths\":[\"$T/g.bin\"],\"peer\":\"127.0.0.1:$VIA\",\"priority\":\"high\"}" \
  "http://$API/api/transfer/send")
id2=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out")
# a second identical request returns the same transfer (duplicate prevention)
out2=$(curl -s "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d "{\"paths\":[\"$T/g.bin\"],\"peer\":\"127.0.0.1:$VIA\",\"priority\":\"high\"}" \
  "http://$API/api/transfer/send")
python3 -c 'import json,sys; x=json.loads(sys.argv[1]); assert x["id"]==sys.argv[2] and x.get("duplicate"), x' "$out2" "$id2" ||
  fail "duplicate request created a new transfer"
for _ in $(seq 1 100); do
  st=$(curl -s "${AUTH[@]}" "http://$API/api/transfer/$id2/progress")
  python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["bytes_done"]>0 else 1)' "$st" && break
  sleep 0.1
done
"$SFT" pause "$id2" --data-dir "$T/d" --api "$API" >/dev/null || fail "pause"
curl -s "${AUTH[@]}" "http://$API/api/transfer/$id2" | grep -q '"state": *"Paused"' || fail "not paused"
rc=0; "$SFT" pause "$id2" --data-dir "$T/d" --api "$API" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "pausing a paused transfer: exit $rc"
"$SFT" resume "$id2" --data-dir "$T/d" --api "$API" >/dev/null || fail "resume"
for _ in $(seq 1 600); do
  st=$(curl -s "${AUTH[@]}" "http://$API/api/transfer/$id2/progress")
  python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["state"] in ("Completed","Failed") else 1)' "$st" && break
  sleep 0.1
done
echo "$st" | grep -q Completed || fail "after resume: $st"
wait_exit "$RECV_PID"
cmp "$T/g.bin" "$T/in2/g.bin" || fail "paused+resumed copy differs"
ok "pause/resume through the API, completes byte-identical; duplicate request returns the same id"

# 5. The daemon receives: a trusted one-shot sender's file lands in its
#    download directory.
sid=$("$SFT" id --data-dir "$T/s")
rc=0; "$SFT" send "$T/f.bin" "127.0.0.1:$QPORT" --no-daemon --data-dir "$T/s" \
  >/dev/null 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "untrusted sender to the daemon: exit $rc"
"$SFT" trust "$sid" --data-dir "$T/d" >/dev/null
"$SFT" send "$T/f.bin" "127.0.0.1:$QPORT" --no-daemon --data-dir "$T/s" \
  >/dev/null 2>"$T/s5.err" || { cat "$T/s5.err"; fail "send to the daemon"; }
cmp "$T/f.bin" "$T/d/downloads/f.bin" || fail "daemon's copy differs"
ok "the daemon receives from trusted senders only"

# 5b. Prometheus exposition at /metrics: token required, valid text format,
#     the transfers above counted.
[ "$(code "http://$API/metrics")" = 401 ] || fail "/metrics without a token"
curl -s "${AUTH[@]}" "http://$API/metrics" >"$T/metrics.txt"
grep -q '^chunks_sent_total [1-9]' "$T/metrics.txt" || fail "chunks_sent_total: $(grep chunks_sent "$T/metrics.txt")"
grep -q '^process_resident_memory_bytes [1-9]' "$T/metrics.txt" || fail "process metrics"
if command -v promtool >/dev/null; then
  promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 || { cat "$T/promtool.out"; fail "promtool"; }
fi
ok "/metrics: token required, promtool-valid, transfers counted"

# 5c. gRPC on grpc_bind_addr with the same token.
GRPC=$(sed -n 's/^grpc //p' "$T/daemon.out")
/usr/bin/python3 "$(dirname "$0")/grpc_daemon_check.py" "$GRPC" "$TOK" "$id" \
  >"$T/grpc.out" 2>&1 || { cat "$T/grpc.out"; fail "gRPC checks"; }
ok "gRPC: UNAUTHENTICATED without token, ListTransfers, GetTransferStatus, WatchTransfer, NOT_FOUND"

# 6. SIGTERM stops it cleanly; the session store passes integrity_check.
kill -TERM "$DPID"
wait_exit "$DPID"
[ "$RC" = 0 ] || { cat "$T/daemon.err"; fail "daemon exit $RC after SIGTERM"; }
[ "$(sqlite3 "$T/d/sft.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check"
[ "$(sqlite3 "$T/d/sft.db" "select count(*) from sessions where state=5")" -ge 2 ] ||
  fail "completed sessions not recorded"
ok "SIGTERM: exit 0, store integrity ok, completed transfers recorded"
