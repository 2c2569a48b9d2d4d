#!/bin/bash
# sft-netsim link: TUN link between two network namespaces.
#  1. delay=20ms: ICMP echo RTT >= 40 ms; a 4 MiB TCP transfer A -> B
#     arrives byte-identical; the namespaces are gone after the link exits.
#  2. loss=10% (both directions, fixed seed): of 100 pings the lost ones are
#     exactly the model's drops (up + down) and 8..32 % of the total.
#  3. a setup failure (TUN named "lo") removes the namespaces it created.
#  4. an existing namespace is refused (with the delete command) and left
#     alone; with --reuse it is used and still left in place afterwards.
# Needs root, iproute2 and /dev/net/tun, else prints "SKIP: reason", exit 0.
set -euo pipefail
B="${SFT_BUILD_DIR:?}/sft-netsim"
[ -x "$B" ] || { echo "no $B"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: not root (network namespaces need root)"; exit 0; }
command -v ip >/dev/null || { echo "SKIP: no ip (iproute2)"; exit 0; }
[ -c /dev/net/tun ] || { echo "SKIP: no /dev/net/tun"; exit 0; }
command -v python3 >/dev/null || { echo "FAIL: python3 needed"; exit 1; }

NA="sftT$$a"; NB="sftT$$b" # unique: never touch another run's namespaces
T=$(mktemp -d)
LPID=
cleanup() {
  if [ -n "$LPID" ]; then kill -TERM "$LPID" 2>/dev/null || true; wait "$LPID" 2>/dev/null || true; fi
  for n in "$NA" "$NB"; do
    ip netns list | grep -qw "$n" && ip netns delete "$n" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP
fail() { echo "FAIL: $*" >&2; cat "$T"/link.* >&2 2>/dev/null || true; exit 1; }
ns_present() { ip netns list | grep -qw "$1"; }

# start_link ARGS...: runs the link in the background, waits for "ready".
start_link() {
  "$B" link --ns-a "$NA" --ns-b "$NB" --stats-json "$T/stats.json" "$@" \
    >"$T/link.out" 2>"$T/link.err" &
  LPID=$!
  for _ in $(seq 200); do
    grep -q '^ready ' "$T/link.out" 2>/dev/null && return 0
    if ! kill -0 "$LPID" 2>/dev/null; then
      local rc=0; wait "$LPID" || rc=$?; LPID=
      if [ $rc -eq 3 ]; then echo "SKIP: $(cat "$T/link.err")"; exit 0; fi
      fail "link exited ($rc) before ready"
    fi
    sleep 0.05
  done
  fail "no ready line"
}
stop_link() {
  kill -TERM "$LPID"; wait "$LPID" || fail "link exit status $?"; LPID=
  grep -q '^stats {' "$T/link.out" || fail "no stats line"
}

# ping.py COUNT INTERVAL_S: ICMP echo to 10.77.0.2 from the calling
# namespace; prints "sent N received M min_ms X".
cat >"$T/ping.py" <<'EOF'
import os, select, socket, struct, sys, time
count, gap = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
def cks(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
sent, got, rtts = {}, set(), []
def poll(deadline):
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            return
        d = s.recv(4096); ihl = (d[0] & 15) * 4
        t, _, _, i, q = struct.unpack('!BBHHH', d[ihl:ihl + 8])
        if t == 0 and i == ident and q in sent and q not in got:
            got.add(q); rtts.append(time.monotonic() - sent[q])
for q in range(count):
    h = struct.pack('!BBHHH', 8, 0, 0, ident, q) + b'p' * 56
    h = h[:2] + struct.pack('!H', cks(h)) + h[4:]
    sent[q] = time.monotonic(); s.sendto(h, ('10.77.0.2', 0))
    poll(time.monotonic() + gap)
poll(time.monotonic() + 0.5)
print('sent %d received %d min_ms %.1f' % (count, len(got), min(rtts) * 1e3 if rtts else -1))
EOF

# tcp.py recv FILE | send FILE: one TCP connection to 10.77.0.2:5599.
cat >"$T/tcp.py" <<'EOF'
import socket, sys
mode, path = sys.argv[1], sys.argv[2]
if mode == 'recv':
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('10.77.0.2', 5599)); l.listen(1)
    print('listening', flush=True)
    c, _ = l.accept()
    with open(path, 'wb') as f:
        while True:
            b = c.recv(1 << 16)
            if not b: break
            f.write(b)
else:
    c = socket.create_connection(('10.77.0.2', 5599), timeout=20)
    with open(path, 'rb') as f: c.sendall(f.read())
    c.close()
EOF

# ---- 1: delay, RTT, byte-identical TCP, namespaces removed ----
start_link --spec "delay=20ms,seed=1"
ns_present "$NA" && ns_present "$NB" || fail "namespaces missing while running"
OUT=$(ip netns exec "$NA" python3 "$T/ping.py" 5 0.2)
echo "ping: $OUT"
read -r _ S _ R _ MIN <<<"$OUT"
[ "$R" -eq "$S" ] || fail "clean link lost pings"
python3 -c "import sys; sys.exit(0 if 40.0 <= $MIN < 1000 else 1)" || fail "RTT $MIN ms (want >= 40)"
head -c $((4 << 20)) /dev/urandom >"$T/src.bin"
ip netns exec "$NB" python3 "$T/tcp.py" recv "$T/dst.bin" >"$T/recv.out" & RPID=$!
for _ in $(seq 100); do grep -q listening "$T/recv.out" 2>/dev/null && break; sleep 0.05; done
ip netns exec "$NA" python3 "$T/tcp.py" send "$T/src.bin"
wait $RPID || fail "receiver failed"
cmp "$T/src.bin" "$T/dst.bin" || fail "TCP data differs"
echo "ok - 4 MiB TCP byte-identical"
stop_link
grep -q '"drop_send":0,' "$T/stats.json" || fail "drop_send"
UP=$(grep -o '"up":{"pkts_in":[0-9]*' "$T/stats.json" | grep -o '[0-9]*$')
[ "$UP" -gt 2800 ] || fail "too few packets up: $UP" # 4 MiB / 1448
ns_present "$NA" && fail "$NA left behind"
ns_present "$NB" && fail "$NB left behind"
echo "ok - namespaces removed"

# ---- 2: 10 % loss each way: lost pings == model drops ----
start_link --spec "loss=10%,seed=7"
OUT=$(ip netns exec "$NA" python3 "$T/ping.py" 100 0.01)
echo "ping: $OUT"
stop_link
read -r _ S _ R _ _ <<<"$OUT"
DROPS=$(grep -o '"drop_loss":[0-9]*' "$T/stats.json" | awk -F: '{s += $2} END {print s}')
LOST=$((S - R))
echo "lost $LOST, model drops $DROPS"
[ "$LOST" -eq "$DROPS" ] || fail "lost pings ($LOST) != model drops ($DROPS)"
[ "$LOST" -ge 8 ] && [ "$LOST" -le 32 ] || fail "loss $LOST % outside 8..32"
ns_present "$NA" || ns_present "$NB" && fail "namespaces left behind"

# ---- 3: a failure after the namespaces exist removes them ----
RC=0; "$B" link --ns-a "$NA" --ns-b "$NB" --dev lo >"$T/link.out" 2>"$T/link.err" || RC=$?
[ $RC -eq 1 ] || fail "TUN named lo accepted ($RC)"
ns_present "$NA" || ns_present "$NB" && fail "failed setup left namespaces"
echo "ok - failed setup cleaned up"

# ---- 4: existing namespaces are not ours ----
ip netns add "$NA"
RC=0; "$B" link --ns-a "$NA" --ns-b "$NB" --duration 5 >"$T/link.out" 2>"$T/link.err" || RC=$?
[ $RC -eq 1 ] || fail "existing namespace accepted ($RC)"
grep -q "ip netns delete $NA" "$T/link.err" || fail "no delete hint"
ns_present "$NA" || fail "refused run deleted $NA"
ns_present "$NB" && fail "refused run left $NB"
start_link --reuse
OUT=$(ip netns exec "$NA" python3 "$T/ping.py" 3 0.1)
read -r _ S _ R _ _ <<<"$OUT"
[ "$R" -eq 3 ] || fail "reuse link: $OUT"
stop_link
ns_present "$NA" || fail "--reuse deleted the namespace it did not create"
ns_present "$NB" && fail "$NB (created) left behind"
ip netns delete "$NA"
echo "ok - existing namespace refused, reused and kept"
echo OK
