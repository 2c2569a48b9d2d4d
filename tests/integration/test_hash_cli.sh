#!/usr/bin/env bash
# `sft hash` against b3sum (identical output, including escaped names), the
# --chunks format and root, and the exit codes. Needs $SFT and b3sum.
set -euo pipefail

: "${SFT:?SFT must name the sft binary}"
command -v b3sum >/dev/null || { echo "b3sum not installed" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sft-hash-cli.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
cd "$tmp"

fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- files of awkward sizes, awkward names ---------------------------------
files=()
for n in 0 1 1023 1024 1025 65536 $((1024 * 1024 + 1)) $((5 * 1024 * 1024 + 3)); do
  head -c "$n" /dev/urandom >"size_$n"
  files+=("size_$n")
done
head -c 3000 /dev/urandom >"with space"
head -c 3001 /dev/urandom >'back\slash'
head -c 3002 /dev/urandom >$'new\nline'
head -c 3003 /dev/urandom >$'both\\and\nmore\n'
head -c 3004 /dev/urandom >$'not utf8 \xff\xe0\xa0'
files+=("with space" 'back\slash' $'new\nline' $'both\\and\nmore\n' \
        $'not utf8 \xff\xe0\xa0')

"$SFT" hash "${files[@]}" >sft.out
b3sum "${files[@]}" >b3.out
diff b3.out sft.out || fail "sft hash differs from b3sum"
[ "$(wc -l <sft.out)" -eq 13 ] || fail "expected 13 lines (newlines escaped)"
grep -q '^\\' sft.out || fail "no escaped line: the escaping case did not run"

# standard input, both ways
"$SFT" hash - <size_1025 >stdin1.out
b3sum <size_1025 >stdin2.out
diff stdin2.out stdin1.out || fail "stdin (-) differs from b3sum"
"$SFT" hash <size_1025 >stdin3.out
diff stdin2.out stdin3.out || fail "stdin (no FILE) differs from b3sum"

# ---- --chunks ----------------------------------------------------------------
big="size_$((5 * 1024 * 1024 + 3))"
"$SFT" hash --chunks "$big" >c1.out
"$SFT" hash --chunks "$big" >c2.out
diff c1.out c2.out || fail "--chunks output not stable across runs"
head -n 1 c1.out | diff <(b3sum "$big") - || fail "--chunks first line differs"
sed -n 2,4p c1.out | diff <(printf 'algo blake3\nchunk_size 1048576\nchunks 6\n') - \
  || fail "--chunks header lines"
[ "$(grep -c '^chunk [0-9]* [0-9a-f]\{64\}$' c1.out)" -eq 6 ] || fail "6 chunk lines"
grep -q '^root [0-9a-f]\{64\}$' c1.out || fail "root line"
[ "$(wc -l <c1.out)" -eq 11 ] || fail "--chunks line count"

# each chunk digest is the BLAKE3 of that slice of the file
for i in 0 5; do
  want=$(dd if="$big" bs=1048576 skip=$i count=1 status=none | b3sum --no-names)
  got=$(awk -v i=$i '$1 == "chunk" && $2 == i { print $3 }' c1.out)
  [ "$want" = "$got" ] || fail "chunk $i digest"
done

# different chunk sizes: different counts, different roots
"$SFT" hash --chunks --chunk-size 64K "$big" >c64.out
"$SFT" hash --chunks --chunk-size 4MiB "$big" >c4m.out
grep -qx 'chunks 81' c64.out || fail "64K chunks: expected 81"
grep -qx 'chunk_size 65536' c64.out || fail "64K chunk_size line"
grep -qx 'chunks 2' c4m.out || fail "4MiB chunks: expected 2"
r1=$(grep '^root ' c1.out); r2=$(grep '^root ' c64.out); r3=$(grep '^root ' c4m.out)
[ "$r1" != "$r2" ] && [ "$r1" != "$r3" ] && [ "$r2" != "$r3" ] || fail "roots equal"
"$SFT" hash --chunks --chunk-size 65536 "$big" | diff c64.out - \
  || fail "65536 and 64K differ"

# the root recomputed here from the definition in integrity.md, for 3 chunks:
# leaf = H(00 || d), node = H(01 || l || r), root = H(02 || le64(n) || top)
if command -v xxd >/dev/null; then
  b3hex() { xxd -r -p | b3sum --no-names; }
  head -c 10000 /dev/urandom >three
  "$SFT" hash --chunks --chunk-size 4K three >three.out
  mapfile -t d < <(awk '$1 == "chunk" { print $3 }' three.out)
  [ "${#d[@]}" -eq 3 ] || fail "three: 3 chunks"
  l0=$(echo "00${d[0]}" | b3hex); l1=$(echo "00${d[1]}" | b3hex)
  l2=$(echo "00${d[2]}" | b3hex)
  n01=$(echo "01$l0$l1" | b3hex); top=$(echo "01$n01$l2" | b3hex)
  want=$(echo "020300000000000000$top" | b3hex)
  grep -qx "root $want" three.out || fail "root differs from the definition"
  # the empty file: H(02 || le64(0)), the value in integrity.md
  "$SFT" hash --chunks size_0 | grep -qx 'chunks 0' || fail "empty: 0 chunks"
  "$SFT" hash --chunks size_0 | grep -qx \
    'root c837765444815de6db1a10b88c56b546eb45d640b9323beb30f37038174a2c97' \
    || fail "empty root"
fi

# sha256: the first line is the SHA-256 of the file
"$SFT" hash --algo sha256 size_1025 | diff <(sha256sum size_1025) - \
  || fail "--algo sha256 differs from sha256sum"
"$SFT" hash --algo sha256 --chunks size_1025 | grep -qx 'algo sha256' \
  || fail "sha256 algo line"

# ---- errors ----------------------------------------------------------------
set +e
"$SFT" hash size_1 no_such_file size_1023 >err.out 2>err.txt
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "missing file: exit $rc, want 1"
grep -q 'no_such_file' err.txt || fail "missing file not named"
grep -q 'No such file' err.txt || fail "missing file: no reason"
diff <(b3sum size_1 size_1023) err.out || fail "the other files were not hashed"

for bad in 1K 4095 17M 16777217 0 abc 12Q ''; do
  set +e
  "$SFT" hash --chunks --chunk-size "$bad" size_1 >/dev/null 2>err.txt
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "--chunk-size '$bad': exit $rc, want 2"
  grep -q 'chunk-size' err.txt || fail "--chunk-size '$bad': message"
done
for ok in 4K 16M 4096 16MiB; do
  "$SFT" hash --chunks --chunk-size "$ok" size_1 >/dev/null || fail "$ok refused"
done
set +e
"$SFT" hash --algo md5 size_1 >/dev/null 2>&1; rc1=$?
"$SFT" hash --no-such-option size_1 >/dev/null 2>&1; rc2=$?
set -e
[ "$rc1" -eq 2 ] && [ "$rc2" -eq 2 ] || fail "bad option exit codes $rc1 $rc2"
"$SFT" hash --help | grep -q 'usage: sft hash' || fail "--help"

echo "test_hash_cli: ok"
