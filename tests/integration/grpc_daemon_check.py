"""gRPC checks against a running `sft daemon` (run by test_daemon.sh with
/usr/bin/python3): UNAUTHENTICATED without a token, ListTransfers,
GetTransferStatus and WatchTransfer of a finished transfer, NOT_FOUND.

usage: grpc_daemon_check.py HOST:PORT TOKEN TRANSFER_ID
"""
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

addr, token, tid = sys.argv[1:4]
proto = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
tmp = tempfile.mkdtemp(prefix="sft-grpc-")
subprocess.run(["protoc", "--python_out=" + tmp, "-I" + proto, "sft.proto"], check=True)
sys.path.insert(0, tmp)
import sft_pb2  # noqa: E402

shutil.rmtree(tmp, ignore_errors=True)
ch = grpc.insecure_channel(addr)
md = [("authorization", "Bearer " + token)]


def unary(name, req, reply, metadata=md):
    return ch.unary_unary("/sft.v1.Agent/" + name,
                          request_serializer=req.SerializeToString,
                          response_deserializer=reply.FromString)(req, metadata=metadata, timeout=10)


try:
    unary("ListTransfers", sft_pb2.ListTransfersRequest(), sft_pb2.ListTransfersReply, metadata=[])
    raise SystemExit("ListTransfers without a token succeeded")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.code()

lst = unary("ListTransfers", sft_pb2.ListTransfersRequest(), sft_pb2.ListTransfersReply)
assert tid in [t.id for t in lst.transfers], lst
st = unary("GetTransferStatus", sft_pb2.GetTransferStatusRequest(id=tid), sft_pb2.TransferStatus)
assert st.state == sft_pb2.TransferState.Value("TRANSFER_STATE_COMPLETED") or st.state == 6, st
assert st.bytes_done == st.bytes_total > 0, st
try:
    unary("GetTransferStatus", sft_pb2.GetTransferStatusRequest(id="0" * 32), sft_pb2.TransferStatus)
    raise SystemExit("unknown id found")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()
watch = ch.unary_stream("/sft.v1.Agent/WatchTransfer",
                        request_serializer=sft_pb2.WatchTransferRequest.SerializeToString,
                        response_deserializer=sft_pb2.TransferStatus.FromString)
msgs = list(watch(sft_pb2.WatchTransferRequest(id=tid), metadata=md, timeout=10))
assert msgs and msgs[-1].state == st.state, msgs
print("grpc ok: %d transfers listed" % len(lst.transfers))
