#!/usr/bin/env bash
# Clean-link goodput of sft on loopback: one file of SIZE_MB (default 1024)
# from the page cache to an ext4 directory, median of RUNS (default 3).
# Goodput = file bytes / wall time of `sft send`, connection set-up included.
# Prints name=value lines.
set -euo pipefail
cd "$(dirname "$0")/.."
SFT=${SFT:-$PWD/build/sft}
size_mb=${SIZE_MB:-1024}
runs=${RUNS:-3}
w=$(mktemp -d /tmp/sft-bench.XXXXXX)
trap 'rm -rf "$w"' EXIT
head -c "$((size_mb << 20))" /dev/urandom >"$w/f"
cat "$w/f" >/dev/null
rates=()
for i in $(seq 1 "$runs"); do
  rm -rf "$w/in"; mkdir "$w/in"
  "$SFT" recv --dir "$w/in" --listen 127.0.0.1:0 --once --accept-any \
    --data-dir "$w/r" >"$w/r.out" 2>/dev/null &
  pid=$!
  port=
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$w/r.out" 2>/dev/null || true)
    [ -n "$port" ] && break; sleep 0.05
  done
  t0=$(date +%s.%N)
  "$SFT" send "$w/f" "127.0.0.1:$port" --data-dir "$w/s" >/dev/null 2>&1
  t1=$(date +%s.%N)
  wait "$pid"
  cmp -s "$w/f" "$w/in/f" || { echo "copy differs" >&2; exit 1; }
  rates+=("$(echo "$size_mb * 1048576 / ($t1 - $t0) / 1000000" | bc -l)")
done
med=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf 'sft_loopback_mbps=%.0f\n' "$(echo "$med * 8" | bc -l)"
printf 'sft_loopback_MBps=%.0f\n' "$med"
printf 'sft_loopback_runs=%s\n' "$(printf '%.0f ' "${rates[@]}")"
