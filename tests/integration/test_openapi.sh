#!/usr/bin/env bash
# docs/openapi.yaml against the daemon: the source's route table and the spec
# list the same routes, every documented status of every route is produced by
# a crafted request, 2xx bodies match their schemas, error bodies and
# documented headers are right (tests/integration/openapi_check.py). Two
# daemons: one without a rate limit, one with rate_limit = 1 for the 429s.
. "$(dirname "$0")/lib.sh"
SRC=${SFT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

# start_daemon NAME ARGS...: sets API_<NAME> and TOK_<NAME>.
start_daemon() {
  local name=$1 api=; shift
  "$SFT" daemon --data-dir "$T/$name" --set network.quic_bind_addr=127.0.0.1:0 \
    --set api.api_bind_addr=127.0.0.1:0 --set api.grpc_bind_addr=127.0.0.1:0 \
    "$@" >"$T/$name.out" 2>"$T/$name.err" &
  PIDS+=("$!")
  for _ in $(seq 1 400); do
    api=$(sed -n 's/^api //p' "$T/$name.out" 2>/dev/null || true)
    [ -n "$api" ] && break; sleep 0.05
  done
  [ -n "$api" ] || { cat "$T/$name.err" >&2; fail "daemon $name did not start"; }
  printf -v "API_$name" '%s' "$api"
  printf -v "TOK_$name" '%s' "$(cat "$T/$name/api.token")"
}

start_daemon a --set api.rate_limit=none --set api.body_limit=64K
start_daemon b --set api.rate_limit=1
mkdir -p "$T/in"
start_recv r --dir "$T/in" --accept-any --data-dir "$T/r"
# 8 MB at bwlimit 4M (4 Mbit/s) stays in flight for ~16 s: long enough to
# pause, resume and cancel it; it is cancelled, never waited for.
head -c 8000000 /dev/zero >"$T/f.bin"
/usr/bin/python3 "$(dirname "$0")/openapi_check.py" "$SRC/docs/openapi.yaml" \
  "$SRC" "$API_a" "$TOK_a" "$API_b" "$TOK_b" "127.0.0.1:$PORT" "$T/f.bin" 65536 \
  >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "openapi_check"; }
grep -v '^ok ' "$T/check.out"
ok "openapi: $(grep -c '^ok ' "$T/check.out") route/status pairs checked"
# the daemons still answer after the bad requests (b may still say 429)
curl -sf "http://$API_a/healthz" >/dev/null || fail "daemon a unhealthy after the checks"
c=$(curl -s -o /dev/null -w '%{http_code}' "http://$API_b/healthz")
[ "$c" = 200 ] || [ "$c" = 429 ] || fail "daemon b answers $c after the checks"
ok "both daemons answer after every crafted request"
