#!/usr/bin/env bash
# The exposition of the predefined metric set (after some updates, printed by
# `test_metrics --dump`) must pass `promtool check metrics` without a single
# complaint (parse errors and lint warnings both fail). SKIP when promtool is
# not installed (Debian package `prometheus`).
set -euo pipefail
if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIP: promtool not found (apt-get install prometheus to enable)"
  exit 0
fi
BIN=${SFT_BUILD_DIR:-$(dirname "${SFT:-./sft}")}/test_metrics
[ -x "$BIN" ] || { echo "FAIL: $BIN not built" >&2; exit 1; }
T=$(mktemp -d /tmp/sft-metrics.XXXXXX)
trap 'rm -rf "$T"' EXIT

"$BIN" --dump >"$T/metrics.txt" || { echo "FAIL: $BIN --dump failed" >&2; exit 1; }
grep -q '^# TYPE chunk_size_bytes histogram$' "$T/metrics.txt" ||
  { echo "FAIL: dump looks wrong" >&2; cat "$T/metrics.txt" >&2; exit 1; }
rc=0
promtool check metrics <"$T/metrics.txt" >"$T/out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$T/out" ]; then
  echo "FAIL: promtool check metrics (rc=$rc):" >&2
  cat "$T/out" >&2
  exit 1
fi
echo "ok - promtool check metrics accepts $(grep -vc '^#' "$T/metrics.txt") samples"
