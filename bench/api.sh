#!/usr/bin/env bash
# Control-plane throughput of `sft daemon` on loopback (rate limit off):
#   - REST GET /api/transfer/{id}/progress under wrk (-t1, CONNS connections,
#     DURATION s, --latency): requests/s and p99, once idle and once while a
#     loopback transfer of a big sparse file runs through the daemon;
#   - gRPC GetTransferStatus calls/s from a Python grpcio client
#     (GRPC_PROCS processes x GRPC_THREADS threads, blocking unary calls).
# Each figure is the median of RUNS (default 3). Prints name=value lines.
# Needs wrk and /usr/bin/python3 with grpcio + protobuf, protoc.
set -euo pipefail
cd "$(dirname "$0")/.."
SFT=${SFT:-$PWD/build/sft}
runs=${RUNS:-3}
dur=${DURATION:-5}
conns=${CONNS:-20}
gprocs=${GRPC_PROCS:-3}
gthreads=${GRPC_THREADS:-4}
w=$(mktemp -d /tmp/sft-bench-api.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$w"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }

"$SFT" daemon --data-dir "$w/d" --set network.quic_bind_addr=127.0.0.1:0 \
  --set api.api_bind_addr=127.0.0.1:0 --set api.grpc_bind_addr=127.0.0.1:0 \
  --set api.rate_limit=none >"$w/d.out" 2>"$w/d.err" &
pids+=("$!")
api=
for _ in $(seq 1 200); do
  api=$(sed -n 's/^api //p' "$w/d.out" 2>/dev/null || true)
  [ -n "$api" ] && break; sleep 0.05
done
[ -n "$api" ] || { cat "$w/d.err" >&2; exit 1; }
grpc=$(sed -n 's/^grpc //p' "$w/d.out")
tok=$(cat "$w/d/api.token")
auth=(-H "Authorization: Bearer $tok")
mkdir -p "$w/in"
"$SFT" recv --listen 127.0.0.1:0 --dir "$w/in" --accept-any --data-dir "$w/r" \
  >"$w/r.out" 2>/dev/null &
pids+=("$!")
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$w/r.out" 2>/dev/null || true)
  [ -n "$port" ] && break; sleep 0.05
done
[ -n "$port" ] || { echo "receiver did not start" >&2; exit 1; }

jfield() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
send() {
  curl -s "${auth[@]}" -H 'Content-Type: application/json' \
    -d "{\"paths\":[\"$1\"],\"peer\":\"127.0.0.1:$port\"}" "http://$api/api/transfer/send" | jfield id
}
state() { curl -s "${auth[@]}" "http://$api/api/transfer/$1/progress" | jfield state; }

# A finished transfer to poll while idle.
head -c 1000000 /dev/urandom >"$w/small"
id=$(send "$w/small")
for _ in $(seq 1 200); do [ "$(state "$id")" = Completed ] && break; sleep 0.05; done

# wrk_run URL: prints "req_per_s p99_ms".
wrk_run() {
  wrk -t1 -c"$conns" -d"${dur}s" --latency "${auth[@]}" "$1" | awk '
    /Requests\/sec:/ { rps = $2 }
    $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                  ms = u == "us" ? v / 1000 : u == "ms" ? v : u == "s" ? v * 1000 : v * 60000 }
    / Non-2xx or 3xx responses:/ { bad = $NF }
    END { if (bad) { print "wrk: " bad " non-2xx answers" > "/dev/stderr"; exit 1 }
          printf "%s %.3f\n", rps, ms }'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

idle_rps=(); idle_p99=(); busy_rps=(); busy_p99=()
for _ in $(seq 1 "$runs"); do
  read -r r p < <(wrk_run "http://$api/api/transfer/$id/progress")
  idle_rps+=("$r"); idle_p99+=("$p")
done

busy_mb=()
for i in $(seq 1 "$runs"); do
  truncate -s 8G "$w/big$i"  # sparse: read as zeros, never written here
  bid=$(send "$w/big$i")
  for _ in $(seq 1 200); do [ "$(state "$bid")" = Transferring ] && break; sleep 0.05; done
  b0=$(curl -s "${auth[@]}" "http://$api/api/transfer/$bid/progress" | jfield bytes_done)
  read -r r p < <(wrk_run "http://$api/api/transfer/$bid/progress")
  b1=$(curl -s "${auth[@]}" "http://$api/api/transfer/$bid/progress" | jfield bytes_done)
  st=$(state "$bid")
  [ "$st" = Transferring ] || {
    echo "run $i: the transfer is $st after wrk:" >&2
    curl -s "${auth[@]}" "http://$api/api/transfer/$bid" >&2; exit 1; }
  busy_rps+=("$r"); busy_p99+=("$p")
  busy_mb+=("$(echo "($b1 - $b0) / $dur / 1000000" | bc -l)")
  curl -s -o /dev/null "${auth[@]}" -X POST -H 'Content-Length: 0' "http://$api/api/transfer/$bid/cancel"
  for _ in $(seq 1 200); do [ "$(state "$bid")" = Failed ] && break; sleep 0.05; done
  rm -rf "$w/in"/* "$w/in"/.[!.]* 2>/dev/null || true
done

# gRPC: processes x threads of blocking GetTransferStatus calls for dur s.
protoc --python_out="$w" -Iproto sft.proto
grpc_rps=()
for _ in $(seq 1 "$runs"); do
  grpc_rps+=("$(/usr/bin/python3 - "$w" "$grpc" "$tok" "$id" "$dur" "$gprocs" "$gthreads" <<'PY'
import multiprocessing as mp, sys, threading, time
w, addr, tok, tid, dur, procs, threads = sys.argv[1:8]
dur, procs, threads = float(dur), int(procs), int(threads)
sys.path.insert(0, w)

def worker(q):
    import grpc, sft_pb2
    ch = grpc.insecure_channel(addr)
    call = ch.unary_unary("/sft.v1.Agent/GetTransferStatus",
                          request_serializer=sft_pb2.GetTransferStatusRequest.SerializeToString,
                          response_deserializer=sft_pb2.TransferStatus.FromString)
    req = sft_pb2.GetTransferStatusRequest(id=tid)
    md = [("authorization", "Bearer " + tok)]
    call(req, metadata=md, timeout=5)  # connect before the clock starts
    counts = [0] * threads
    start = time.time() + 0.2
    end = start + dur
    def run(k):
        while time.time() < start:
            time.sleep(0.001)
        n = 0
        while time.time() < end:
            r = call(req, metadata=md, timeout=5)
            n += 1
        assert r.id == tid
        counts[k] = n
    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    q.put(sum(counts))

q = mp.Queue()
ps = [mp.Process(target=worker, args=(q,)) for _ in range(procs)]
for p in ps: p.start()
total = sum(q.get() for _ in ps)
for p in ps: p.join()
print("%.0f" % (total / dur))
PY
)")
done

printf 'rest_progress_idle_rps=%.0f\n' "$(printf '%s\n' "${idle_rps[@]}" | median)"
printf 'rest_progress_idle_p99_ms=%.2f\n' "$(printf '%s\n' "${idle_p99[@]}" | median)"
printf 'rest_progress_busy_rps=%.0f\n' "$(printf '%s\n' "${busy_rps[@]}" | median)"
printf 'rest_progress_busy_p99_ms=%.2f\n' "$(printf '%s\n' "${busy_p99[@]}" | median)"
printf 'busy_transfer_MBps=%.0f\n' "$(printf '%s\n' "${busy_mb[@]}" | median)"
printf 'grpc_status_calls_per_s=%s\n' "$(printf '%s\n' "${grpc_rps[@]}" | median)"
printf 'runs_rest_idle_rps=%s\n' "$(printf '%.0f ' "${idle_rps[@]}")"
printf 'runs_rest_busy_rps=%s\n' "$(printf '%.0f ' "${busy_rps[@]}")"
printf 'runs_rest_busy_p99_ms=%s\n' "$(printf '%s ' "${busy_p99[@]}")"
printf 'runs_grpc_calls_per_s=%s\n' "$(printf '%s ' "${grpc_rps[@]}")"
