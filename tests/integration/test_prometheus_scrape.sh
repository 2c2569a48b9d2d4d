#!/usr/bin/env bash
# A real Prometheus server (Debian's `prometheus`) scrapes the daemon's
# /metrics with the API token (authorization.credentials_file) and answers
# queries about two finished transfers: one sent by the daemon (REST), one
# received by it (sft send --no-daemon). bytes_transferred_total must equal
# the bytes of both files, chunks_received_total the received file's chunks.
# SKIP (exit 0 with a SKIP line: CMake registers no SKIP_RETURN_CODE) when
# prometheus is not installed.
. "$(dirname "$0")/lib.sh"
if ! command -v prometheus >/dev/null 2>&1; then
  echo "SKIP: prometheus not found (apt-get install prometheus to enable)"
  exit 0
fi

"$SFT" daemon --data-dir "$T/d" --set network.quic_bind_addr=127.0.0.1:0 \
  --set api.api_bind_addr=127.0.0.1:0 --set api.grpc_bind_addr=127.0.0.1:0 \
  >"$T/daemon.out" 2>"$T/daemon.err" &
PIDS+=("$!")
API=
for _ in $(seq 1 400); do
  API=$(sed -n 's/^api //p' "$T/daemon.out" 2>/dev/null || true)
  [ -n "$API" ] && break; sleep 0.05
done
[ -n "$API" ] || { cat "$T/daemon.err"; fail "daemon did not start"; }
QPORT=$(sed -n 's/.*receiving on .*:\([0-9]*\) into.*/\1/p' "$T/daemon.err")
TOK=$(cat "$T/d/api.token")
AUTH=(-H "Authorization: Bearer $TOK")
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$API/metrics")" = 401 ] ||
  fail "/metrics without the token must be 401"

# 1. The daemon sends S1 bytes (REST) to a one-shot receiver.
S1=3000001
S2=2500000
head -c $S1 /dev/urandom >"$T/a.bin"
head -c $S2 /dev/urandom >"$T/b.bin"
mkdir -p "$T/in"
start_recv r --dir "$T/in" --once --accept-any --data-dir "$T/r"
out=$(curl -s "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d "{\"paths\":[\"$T/a.bin\"],\"peer\":\"127.0.0.1:$PORT\"}" "http://$API/api/transfer/send")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out") ||
  fail "send: $out"
st=
for _ in $(seq 1 600); do
  st=$(curl -s "${AUTH[@]}" "http://$API/api/transfer/$id/progress" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  case $st in Completed|Failed) break ;; esac
  sleep 0.05
done
[ "$st" = Completed ] || fail "daemon's transfer: $st"
wait_exit "$RECV_PID"
cmp "$T/a.bin" "$T/in/a.bin" || fail "sent copy differs"
# 2. The daemon receives S2 bytes from a trusted one-shot sender.
"$SFT" trust "$("$SFT" id --data-dir "$T/s")" --data-dir "$T/d" >/dev/null
"$SFT" send "$T/b.bin" "127.0.0.1:$QPORT" --no-daemon --data-dir "$T/s" \
  >/dev/null 2>"$T/s.err" || { cat "$T/s.err"; fail "send to the daemon"; }
cmp "$T/b.bin" "$T/d/downloads/b.bin" || fail "received copy differs"
ok "daemon sent $S1 and received $S2 bytes"

# 3. Prometheus on a free loopback port, scraping every second.
PP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$T/prom.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sft
    authorization:
      type: Bearer
      credentials_file: $T/d/api.token
    static_configs:
      - targets: ['$API']
EOF
promtool check config "$T/prom.yml" >"$T/promtool.out" 2>&1 || { cat "$T/promtool.out"; fail "promtool check config"; }
prometheus --config.file="$T/prom.yml" --storage.tsdb.path="$T/tsdb" \
  --web.listen-address="127.0.0.1:$PP" --log.level=warn >"$T/prom.log" 2>&1 &
PROM_PID=$!; PIDS+=("$PROM_PID")

# query EXPR: the value of the single sample EXPR yields, or empty.
query() {
  curl -s --get "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    python3 -c 'import json,sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if len(r) == 1 else "")' 2>/dev/null || true
}
WANT_BYTES=$((S1 + S2))
WANT_CHUNKS=$(( (S2 + 1048575) / 1048576 ))
got=
for _ in $(seq 1 600); do  # 30 s: start-up plus a few scrapes
  got=$(query 'bytes_transferred_total{job="sft"}')
  [ "$got" = "$WANT_BYTES" ] && break
  kill -0 "$PROM_PID" 2>/dev/null || { cat "$T/prom.log"; fail "prometheus exited"; }
  sleep 0.05
done
[ "$got" = "$WANT_BYTES" ] || { tail -20 "$T/prom.log"; fail "bytes_transferred_total = '$got', want $WANT_BYTES"; }
[ "$(query 'up{job="sft"}')" = 1 ] || fail "up != 1"
got=$(query 'chunks_received_total{job="sft"}')
[ "$got" = "$WANT_CHUNKS" ] || fail "chunks_received_total = '$got', want $WANT_CHUNKS"
got=$(query 'chunks_sent_total{job="sft"}')
[ -n "$got" ] && [ "$got" -ge $(( (S1 + 1048575) / 1048576 )) ] || fail "chunks_sent_total = '$got'"
[ "$(query 'active_sessions{job="sft"}')" = 0 ] || fail "active_sessions != 0"
ok "prometheus scraped /metrics with the token: bytes_transferred_total=$WANT_BYTES, chunks_received_total=$WANT_CHUNKS, up=1"
