#!/bin/bash
# sft-netsim end to end: echo server behind the proxy, a paced blast
# (clean spec: every datagram comes back), the stats JSON, and the SIGUSR1
# black hole (everything dropped as outage while on). No timing assertions.
set -euo pipefail
B="${SFT_BUILD_DIR:?}/sft-netsim"
[ -x "$B" ] || { echo "no $B"; exit 1; }
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT

wait_listen() { # file -> prints ADDR:PORT
  for _ in $(seq 100); do
    if grep -q '^listening ' "$1" 2>/dev/null; then
      awk '/^listening /{print $2; exit}' "$1"; return 0
    fi
    sleep 0.05
  done
  echo "no listening line in $1" >&2; return 1
}

"$B" check "loss=5%,delay=25ms,ge=1%:10,outage=5x2s/4s@3s,seed=42" >/dev/null
if "$B" check "loss=5" 2>/dev/null; then echo "bad spec accepted"; exit 1; fi

"$B" echo --listen 127.0.0.1:0 >"$T/echo.out" & EPID=$!
EP=$(wait_listen "$T/echo.out")
"$B" proxy --listen 127.0.0.1:0 --to "$EP" --stats-json "$T/stats.json" \
  >"$T/proxy.out" 2>"$T/proxy.err" & PPID_=$!
PP=$(wait_listen "$T/proxy.out")

OUT=$("$B" blast --to "$PP" --size 1200 --rate 20mbit --duration 1)
echo "$OUT"
SENT=$(sed -E 's/.*sent=([0-9]+).*/\1/' <<<"$OUT")
RECV=$(sed -E 's/.*received=([0-9]+).*/\1/' <<<"$OUT")
[ "$SENT" -gt 1000 ] && [ "$SENT" -eq "$RECV" ] || { echo "lost datagrams"; exit 1; }

kill -USR1 $PPID_ # black hole on; wait until the proxy says so
ON=0
for _ in $(seq 200); do
  if grep -q "black hole on" "$T/proxy.err"; then ON=1; break; fi
  sleep 0.05
done
[ $ON -eq 1 ] || { echo "SIGUSR1 not acknowledged"; exit 1; }
OUT=$("$B" blast --to "$PP" --size 1200 --rate 5mbit --duration 0.5)
echo "$OUT"
RECV2=$(sed -E 's/.*received=([0-9]+).*/\1/' <<<"$OUT")
kill -TERM $PPID_; wait $PPID_
kill -TERM $EPID; wait $EPID || true
cat "$T/stats.json"
grep -q "\"sent_up\":$SENT," "$T/stats.json"
OUTAGE=$(grep -o '"drop_outage":[0-9]*' "$T/stats.json" | head -1 | cut -d: -f2)
[ "$OUTAGE" -gt 0 ] && [ "$RECV2" -eq 0 ] || { echo "black hole leaked"; exit 1; }
echo OK
