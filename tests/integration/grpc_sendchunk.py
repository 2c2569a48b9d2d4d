"""gRPC SendChunk into a live receiving session (run by test_grpc_sendchunk.sh
with /usr/bin/python3). The file is being sent slowly over QUIC; this client
pushes its chunks from the END backwards over gRPC into the same session.
Checks: unknown session -> NOT_FOUND, bad session id -> INVALID_ARGUMENT,
wrong length -> INVALID_ARGUMENT, a digest that does not match the data ->
INVALID_ARGUMENT (never reaches the session), chunk_index past the end ->
INVALID_ARGUMENT; accepted chunks are taken by the session; a chunk sent
twice -> accepted false, "chunk already held". Prints accepted=N.

usage: grpc_sendchunk.py HOST:PORT TOKEN SESSION_HEX FILE CHUNKS_FILE
  CHUNKS_FILE: `sft hash --chunks --chunk-size S FILE` output
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import grpc

addr, token, sid, path, chunks_file = sys.argv[1:6]
proto = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
tmp = tempfile.mkdtemp(prefix="sft-grpc-")
subprocess.run(["protoc", "--python_out=" + tmp, "-I" + proto, "sft.proto"], check=True)
sys.path.insert(0, tmp)
import sft_pb2  # noqa: E402

shutil.rmtree(tmp, ignore_errors=True)
ch = grpc.insecure_channel(addr)
md = [("authorization", "Bearer " + token)]
call = ch.unary_unary("/sft.v1.Agent/SendChunk",
                      request_serializer=sft_pb2.SendChunkRequest.SerializeToString,
                      response_deserializer=sft_pb2.SendChunkReply.FromString)

size = cs = 0
digests = {}
for line in open(chunks_file):
    f = line.split()
    if f[0] == "chunk_size":
        cs = int(f[1])
    elif f[0] == "chunk":
        digests[int(f[1])] = bytes.fromhex(f[2])
data = open(path, "rb").read()
n = len(digests)
assert cs and n, "no chunks"


def chunk(i):
    return data[i * cs:(i + 1) * cs]


def code_of(req):
    try:
        call(req, metadata=md, timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


last = n - 1
assert code_of(sft_pb2.SendChunkRequest(session_id="0" * 32, file_id=0, chunk_index=last,
                                        data=chunk(last), digest=digests[last])) \
    == grpc.StatusCode.NOT_FOUND, "unknown session"
assert code_of(sft_pb2.SendChunkRequest(session_id="xyz", file_id=0, chunk_index=last,
                                        data=chunk(last), digest=digests[last])) \
    == grpc.StatusCode.INVALID_ARGUMENT, "bad session id"
assert code_of(sft_pb2.SendChunkRequest(session_id=sid, file_id=0, chunk_index=last,
                                        data=chunk(last) + b"x", digest=digests[last])) \
    == grpc.StatusCode.INVALID_ARGUMENT, "wrong length"
assert code_of(sft_pb2.SendChunkRequest(session_id=sid, file_id=0, chunk_index=last,
                                        data=chunk(last - 1), digest=digests[last])) \
    == grpc.StatusCode.INVALID_ARGUMENT, "digest mismatch"
assert code_of(sft_pb2.SendChunkRequest(session_id=sid, file_id=0, chunk_index=n,
                                        data=chunk(last), digest=digests[last])) \
    == grpc.StatusCode.INVALID_ARGUMENT, "index past the end"
assert code_of(sft_pb2.SendChunkRequest(session_id=sid, file_id=7, chunk_index=0,
                                        data=chunk(0), digest=digests[0])) \
    == grpc.StatusCode.NOT_FOUND, "unknown file"

accepted = 0
for i in range(last, n // 2, -1):  # the back half, last chunk first
    r = call(sft_pb2.SendChunkRequest(session_id=sid, file_id=0, chunk_index=i,
                                      data=chunk(i), digest=digests[i]), metadata=md, timeout=10)
    accepted += r.accepted
assert accepted >= 1, "no chunk accepted"
# The last chunk again, once the session holds it: not taken twice.
for _ in range(100):
    r = call(sft_pb2.SendChunkRequest(session_id=sid, file_id=0, chunk_index=last,
                                      data=chunk(last), digest=digests[last]), metadata=md,
             timeout=10)
    if not r.accepted:
        break
    time.sleep(0.05)
assert not r.accepted and r.reason == "chunk already held", r
print("accepted=%d" % accepted)
