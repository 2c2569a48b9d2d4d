#!/usr/bin/env bash
# `--via ADDR[,ADDR]` (local source addresses of a send), end to end:
#   1  CLI: `sft send ... --via 192.0.2.1` (not an address of this host) and
#      `--via notanip` / `--via 127.0.0.1:5` / a duplicate exit 2 (usage)
#      with a message naming the value, before any connection; --help lists
#      --via
#   2  REST POST /api/transfer/send: "via" "bogus", "192.0.2.1", a number,
#      600 bytes -> 400 invalid_field naming via; "via":"127.0.0.1" -> 202,
#      byte-identical copy, and the stored request (sft.db, what a restarted
#      daemon resumes from) keeps "via"; "via":"" is no via (202)
#   3  CLI through the daemon: `sft send --via 127.0.0.1` puts "via" in the
#      request (found in the stored request), the copy is byte-identical
#   4  a transfer via 127.0.0.1 and 127.0.0.2 uses both: while it runs the
#      sending daemon has UDP sockets from both sources to the receiver,
#      network_paths has 2 entries that both carried bytes, the copy is
#      byte-identical; each path is named "PEER via LOCAL".
# Environment: SFT_VIA_CASES (default "1 2 3 4") picks cases. SFT_KEEP=1
# keeps the temporary directory.
. "$(dirname "$0")/lib.sh"

CASES=${SFT_VIA_CASES:-"1 2 3 4"}
MIB=1048576

# stored_via FILE: the "via" of the stored request whose paths hold FILE
# ("-" when the request has none, "none" when there is no such request).
stored_via() {
  python3 - "$T/d/sft.db" "$1" <<'EOF'
import json, sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
out = "none"
for (body,) in db.execute("SELECT body FROM requests"):
    r = json.loads(bytes(body).decode())
    if sys.argv[2] in r.get("paths", []):
        out = r.get("via") or "-"
print(out)
EOF
}
# udp_sources PORT: source addresses of this host's UDP sockets connected to
# 127.0.0.1:PORT (from /proc/net/udp), sorted, one per line.
udp_sources() {
  python3 - "$1" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
seen = set()
for line in open("/proc/net/udp").read().splitlines()[1:]:
    f = line.split()
    la, ra = f[1].split(":"), f[2].split(":")
    ip = lambda h: socket.inet_ntoa(struct.pack("<I", int(h, 16)))
    if int(ra[1], 16) == port and ip(ra[0]) == "127.0.0.1":
        seen.add(ip(la[0]))
print("\n".join(sorted(seen)))
EOF
}

head -c $((256 * 1024)) /dev/urandom >"$T/small"
NOTHERE=192.0.2.1 # TEST-NET-1: not an address of this host
if ip -o addr 2>/dev/null | grep -q " $NOTHERE/"; then NOTHERE=198.51.100.1; fi

case1() {
  local rc
  "$SFT" send "$T/small" 127.0.0.1:9 --no-daemon --via "$NOTHERE" \
    >"$T/c1.out" 2>"$T/c1.err" && rc=0 || rc=$?
  [ "$rc" = 2 ] || fail "--via $NOTHERE: exit $rc, want 2 ($(cat "$T/c1.err"))"
  grep -q "$NOTHERE: not an address of an up local interface" "$T/c1.err" ||
    fail "--via $NOTHERE: unclear message: $(cat "$T/c1.err")"
  grep -q "loopback" "$T/c1.err" || fail "no hint: $(cat "$T/c1.err")"
  for bad in notanip 127.0.0.1:5 "127.0.0.1,127.0.0.1" "127.0.0.1,"; do
    "$SFT" send "$T/small" 127.0.0.1:9 --no-daemon --via "$bad" \
      >"$T/c1.out" 2>"$T/c1.err" && rc=0 || rc=$?
    [ "$rc" = 2 ] || fail "--via '$bad': exit $rc, want 2 ($(cat "$T/c1.err"))"
    grep -q -- "--via" "$T/c1.err" ||
      fail "--via '$bad': message does not name --via: $(cat "$T/c1.err")"
  done
  grep -q -- "--via '\?notanip'\?\|\"notanip\"" <("$SFT" send "$T/small" \
    127.0.0.1:9 --no-daemon --via notanip 2>&1) ||
    fail "--via notanip: message does not name the value"
  "$SFT" send --help | grep -q -- "--via ADDR" || fail "--help lacks --via"
  ok "CLI --via: not-local, malformed, duplicate -> exit 2 with the reason"
}

case2() {
  local f
  for v in '"bogus"' "\"$NOTHERE\"" 5 "\"$(printf '1%.0s' $(seq 600))\""; do
    post /api/transfer/send \
      "{\"paths\":[\"$T/small\"],\"peer\":\"127.0.0.1:$RPORT\",\"via\":$v}"
    [ "$HTTP" = 400 ] || fail "via $v: HTTP $HTTP $(cat "$T/body")"
    [ "$(jq_ 'j["error"]["code"]')" = invalid_field ] ||
      fail "via $v: $(cat "$T/body")"
    jq_ 'j["error"]["message"]' | grep -q via ||
      fail "via $v: message does not name via: $(cat "$T/body")"
  done
  post /api/transfer/send \
    "{\"paths\":[\"$T/small\"],\"peer\":\"127.0.0.1:$RPORT\",\"via\":\"bogus\"}"
  jq_ 'j["error"]["message"]' | grep -q 'not an IP address' ||
    fail "via bogus: not the parser's reason: $(cat "$T/body")"
  f="$T/f2"
  head -c $((2 * MIB)) /dev/urandom >"$f"
  post /api/transfer/send \
    "{\"paths\":[\"$f\"],\"peer\":\"127.0.0.1:$RPORT\",\"via\":\"127.0.0.1\"}"
  [ "$HTTP" = 202 ] || fail "via 127.0.0.1: HTTP $HTTP $(cat "$T/body")"
  wait_state "$(jq_ 'j["id"]')" 30 Completed
  cmp "$f" "$T/in/f2" || fail "via 127.0.0.1: copy differs"
  [ "$(stored_via "$f")" = 127.0.0.1 ] ||
    fail "stored request lost via: $(stored_via "$f")"
  f="$T/f2e"
  head -c 1000 /dev/urandom >"$f"
  post /api/transfer/send \
    "{\"paths\":[\"$f\"],\"peer\":\"127.0.0.1:$RPORT\",\"via\":\"\"}"
  [ "$HTTP" = 202 ] || fail "via \"\": HTTP $HTTP $(cat "$T/body")"
  wait_state "$(jq_ 'j["id"]')" 30 Completed
  [ "$(stored_via "$f")" = - ] || fail "via \"\" stored as $(stored_via "$f")"
  ok "REST via: 400 invalid_field for bad values; 127.0.0.1 sent and stored"
}

case3() {
  local f="$T/f3" rc
  head -c $((1 * MIB)) /dev/urandom >"$f"
  "$SFT" send "$f" "127.0.0.1:$RPORT" --via 127.0.0.1 --data-dir "$T/d" \
    --api "$API" >"$T/c3.out" 2>"$T/c3.err" && rc=0 || rc=$?
  [ "$rc" = 0 ] || fail "sft send --via via the daemon: exit $rc $(cat "$T/c3.err")"
  cmp "$f" "$T/in/f3" || fail "CLI via daemon: copy differs"
  [ "$(stored_via "$f")" = 127.0.0.1 ] ||
    fail "the CLI did not pass via to the daemon: $(stored_via "$f")"
  ok "CLI --via through the daemon: request carries via"
}

case4() {
  local f="$T/f4" xid srcs="" i np
  pending() { fail "$1"; } # (was pending until send.c used opts.via)
  head -c $((8 * MIB)) /dev/urandom >"$f"
  post /api/transfer/send "{\"paths\":[\"$f\"],\"peer\":\"127.0.0.1:$RPORT\",\
\"via\":\"127.0.0.1,127.0.0.2\",\"bwlimit\":\"24M\"}"
  [ "$HTTP" = 202 ] || { pending "HTTP $HTTP $(cat "$T/body")"; return 0; }
  xid=$(jq_ 'j["id"]')
  # every source seen while it runs (the union of the snapshots)
  for ((i = 0; i < 200; i++)); do
    srcs=$({ printf '%s' "$srcs" | tr ' ' '\n'; udp_sources "$RPORT"; } |
      grep . | sort -u | tr '\n' ' ')
    [ "$srcs" = "127.0.0.1 127.0.0.2 " ] && break
    [ "$(state "$xid")" = Completed ] && break
    sleep 0.05
  done
  wait_state "$xid" 60 Completed Failed Cancelled
  [ "$(state "$xid")" = Completed ] || { pending "state $(state "$xid")"; return 0; }
  cmp "$f" "$T/in/f4" || fail "via 127.0.0.1,127.0.0.2: copy differs"
  [ "$srcs" = "127.0.0.1 127.0.0.2 " ] ||
    { pending "sources seen: '$srcs', want both"; return 0; }
  req GET "/api/transfer/$xid"
  np=$(jq_ 'len([p for p in j["network_paths"] if p["bytes_sent"] > 0])')
  [ "$np" = 2 ] || { pending "paths that carried bytes: $np, want 2"; return 0; }
  [ "$(jq_ 'sorted(p["peer"] for p in j["network_paths"]) == ["127.0.0.1:'"$RPORT"' via 127.0.0.1", "127.0.0.1:'"$RPORT"' via 127.0.0.2"]')" = True ] ||
    fail "via: path names: $(jq_ '[p["peer"] for p in j["network_paths"]]')"
  ok "via 127.0.0.1,127.0.0.2: both sources carried the transfer"
}

if [[ " $CASES " == *" 1 "* ]]; then case1; fi
if [[ " $CASES " == *" 2 "* || " $CASES " == *" 3 "* || " $CASES " == *" 4 "* ]]; then
  mkdir -p "$T/in"
  start_recv r --dir "$T/in" --accept-any --data-dir "$T/rd"
  RPORT=$PORT
  start_daemon d
  for c in 2 3 4; do
    if [[ " $CASES " == *" $c "* ]]; then "case$c"; fi
  done
fi
echo "all ok"
