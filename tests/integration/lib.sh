# Helpers for sft's integration tests (sourced). Every test works in its own
# temporary directory on 127.0.0.1 and cleans up after itself.
set -euo pipefail
SFT=${SFT:?SFT must name the sft binary}
T=$(mktemp -d /tmp/sft-it.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${SFT_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# start_recv NAME ARGS...: starts `sft recv --listen 127.0.0.1:0 ARGS`,
# output in $T/NAME.out/.err; sets RECV_PID and PORT.
start_recv() {
  local name=$1; shift
  "$SFT" recv --listen 127.0.0.1:0 "$@" >"$T/$name.out" 2>"$T/$name.err" &
  RECV_PID=$!
  PIDS+=("$RECV_PID")
  PORT=
  for _ in $(seq 1 200); do
    PORT=$(sed -n -e 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' \
      -e 's/^{"event":"listening".*"port":\([0-9][0-9]*\).*/\1/p' \
      "$T/$name.out" 2>/dev/null || true)  # the file may not exist yet
    [ -n "$PORT" ] && return 0
    kill -0 "$RECV_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$T/$name.err" >&2
  fail "receiver $name did not start"
}

# wait_exit PID: waits (at most 60 s, then kills it) and sets RC to its
# exit status. (Not in a subshell: only this shell can wait for its child.)
wait_exit() {
  local pid=$1
  RC=0
  for _ in $(seq 1 1200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill "$pid" 2>/dev/null && echo "killed $pid after 60 s" >&2
  wait "$pid" || RC=$?
}

# mode FILE: octal permission bits.
mode() { stat -c %a "$1"; }

# start_daemon NAME ARGS...: `sft daemon` on ephemeral loopback ports
# (no API rate limit), data directory $T/${DDIR:-NAME}, output in
# $T/NAME.out/.err. Sets DPID, API (HOST:PORT), TOK, QPORT (QUIC port),
# GRPC (HOST:PORT).
start_daemon() {
  local n=$1 dir
  shift
  dir="$T/${DDIR:-$n}"
  "$SFT" daemon --data-dir "$dir" --set network.quic_bind_addr=127.0.0.1:0 \
    --set api.api_bind_addr=127.0.0.1:0 --set api.grpc_bind_addr=127.0.0.1:0 \
    --set api.rate_limit=0 "$@" >"$T/$n.out" 2>"$T/$n.err" &
  DPID=$!
  PIDS+=("$DPID")
  API=
  for _ in $(seq 1 400); do
    API=$(sed -n 's/^api //p' "$T/$n.out" 2>/dev/null || true)
    [ -n "$API" ] && break
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$API" ] || { cat "$T/$n.err" >&2; fail "daemon $n did not start"; }
  TOK=$(cat "$dir/api.token")
  QPORT=$(sed -n 's/.*receiving on .*:\([0-9]*\) into.*/\1/p' "$T/$n.err")
  GRPC=$(sed -n 's/^grpc //p' "$T/$n.out")
}

# ---- REST helpers (need API, TOK from start_daemon, and T) ----------------
# req METHOD PATH [CURL ARGS...]: an authenticated request to $API; sets
# HTTP (status), body in $T/body, headers (lowercased) in $T/hdr.
req() {
  local m=$1 p=$2
  shift 2
  HTTP=$(curl -s -o "$T/body" -D "$T/hdr.raw" -w '%{http_code}' -X "$m" \
    -H "Authorization: Bearer $TOK" "$@" "http://$API$p")
  tr 'A-Z' 'a-z' <"$T/hdr.raw" | tr -d '\r' >"$T/hdr"
}
# post PATH JSON: POST with a JSON body (Content-Type application/json).
post() { req POST "$1" -H 'Content-Type: application/json' --data-binary "$2"; }
# jq_ EXPR [FILE]: a Python expression over the JSON body (as j).
jq_() {
  python3 -c 'import json,sys
j = json.load(open(sys.argv[2]))
v = eval(sys.argv[1])
print(v if not isinstance(v, (dict, list)) else json.dumps(v))' "$1" "${2:-$T/body}"
}
# err_code: the error code of the last answer; hdr NAME: a header of it.
err_code() { jq_ 'j["error"]["code"]'; }
hdr() { sed -n "s/^$1: *//p" "$T/hdr" | head -1; }
# state ID: the transfer's state (or the HTTP status if not 200).
state() {
  req GET "/api/transfer/$1"
  if [ "$HTTP" = 200 ]; then jq_ 'j["state"]'; else echo "$HTTP"; fi
}
# wait_state ID SECS STATE...: polls until the state is one of STATE.
wait_state() {
  local id=$1 secs=$2 s i
  shift 2
  for ((i = 0; i < secs * 20; i++)); do
    s=$(state "$id")
    for w in "$@"; do [ "$s" = "$w" ] && return 0; done
    sleep 0.05
  done
  fail "transfer $id: state $s after $secs s, want $* ($(cat "$T/body"))"
}

# run_cases CASE...: case_<name> for each, timed; then the daemon $DPID is
# stopped with SIGTERM and must exit 0.
run_cases() {
  local c t0
  for c in "$@"; do
    declare -F "case_$c" >/dev/null || fail "unknown case '$c'"
    t0=$(date +%s)
    "case_$c"
    echo "     ($c took $(($(date +%s) - t0)) s)"
  done
  kill -TERM "$DPID"
  wait_exit "$DPID"
  [ "$RC" = 0 ] || { tail "$T/d.err" >&2; fail "daemon exit $RC after SIGTERM"; }
  ok "SIGTERM: daemon exit 0"
}
