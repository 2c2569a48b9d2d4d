#!/usr/bin/python3
"""gRPC client side of tests/unit/test_grpc.c (run by it as a subprocess).

usage: /usr/bin/python3 test_grpc.py PORT TOKEN [MODE [CA_PEM]]

MODE "all" (default): every RPC against the fake handler table of
test_grpc.c, the error codes, WatchTransfer streaming, and a throughput
figure for GetTransferStatus. MODE "inflight": keeps calls open, prints
READY, and checks that they all end promptly when the server shuts down.
MODE "tls": a few calls over TLS, trusting CA_PEM.

Stubs are generated at run time into a temp dir with protoc and
grpc_python_plugin; the calls are generic (channel.unary_unary / unary_stream).
Exit status: 0 pass, 1 failure, 77 python3-grpcio or protoc missing.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

try:
    import grpc
except ImportError:
    print("python3-grpcio missing", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "proto")
SVC = "/sft.v1.Agent/"


def gen_stubs():
    if not shutil.which("protoc") or not os.path.exists("/usr/bin/grpc_python_plugin"):
        print("protoc or grpc_python_plugin missing", file=sys.stderr)
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="sft-grpc-py-")
    subprocess.run(["protoc", "--python_out=" + tmp, "--grpc_python_out=" + tmp,
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                    "-I" + PROTO_DIR, "sft.proto"], check=True)
    sys.path.insert(0, tmp)
    try:
        import sft_pb2  # noqa: E402
    except ImportError:
        print("python3-protobuf missing", file=sys.stderr)
        sys.exit(77)
    shutil.rmtree(tmp, ignore_errors=True)
    return sft_pb2


pb = gen_stubs()
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)


class Client:
    def __init__(self, ch, token):
        self.ch = ch
        self.md = (("authorization", "Bearer " + token),)
        self.rpcs = {}

    def call(self, method, req, resp_cls, md=None, raw=False, timeout=10):
        key = (method, raw)
        if key not in self.rpcs:
            self.rpcs[key] = self.ch.unary_unary(
                SVC + method,
                request_serializer=None if raw else (lambda m: m.SerializeToString()),
                response_deserializer=resp_cls.FromString)
        return self.rpcs[key](req, metadata=self.md if md is None else md,
                              timeout=timeout)

    def stream(self, method, req, resp_cls, md=None, timeout=10):
        f = self.ch.unary_stream(SVC + method,
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=resp_cls.FromString)
        return f(req, metadata=self.md if md is None else md, timeout=timeout)

    def code_of(self, fn, *a, **kw):
        try:
            fn(*a, **kw)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()


S = pb.TransferStatus


def status(c, tid):
    return c.call("GetTransferStatus", pb.GetTransferStatusRequest(id=tid), S)


def test_auth(c, port, token):
    req = pb.GetTransferStatusRequest(id="t1")
    code, _ = c.code_of(c.call, "GetTransferStatus", req, S, md=())
    check(code == grpc.StatusCode.UNAUTHENTICATED, "no token -> UNAUTHENTICATED, got %s" % code)
    code, _ = c.code_of(c.call, "GetTransferStatus", req, S,
                        md=(("authorization", "Bearer " + token + "x"),))
    check(code == grpc.StatusCode.UNAUTHENTICATED, "wrong token -> UNAUTHENTICATED, got %s" % code)
    code, _ = c.code_of(c.call, "GetTransferStatus", req, S,
                        md=(("authorization", token),))
    check(code == grpc.StatusCode.UNAUTHENTICATED, "token without Bearer -> UNAUTHENTICATED")
    # unauthenticated calls never reach a handler, even for unknown methods
    code, _ = c.code_of(c.call, "Nope", b"", S, md=(), raw=True)
    check(code == grpc.StatusCode.UNAUTHENTICATED, "unknown method without token")


def test_status(c):
    r = status(c, "t1")
    check(r.id == "t1" and r.state == pb.TRANSFER_STATE_TRANSFERRING, "t1 state")
    check(r.bytes_done == 1000 and r.bytes_total == 10000, "t1 bytes")
    check(r.chunks_done == 1 and r.chunks_total == 10, "t1 chunks")
    check(abs(r.rate_bps - 12345.5) < 1e-6, "t1 rate")
    check(r.peer == "10.0.0.2:7000" and r.priority == pb.PRIORITY_NORMAL, "t1 peer/prio")
    code, det = c.code_of(status, c, "nope")
    check(code == grpc.StatusCode.NOT_FOUND and "no such transfer" in det,
          "unknown id -> NOT_FOUND (%s %s)" % (code, det))
    code, _ = c.code_of(status, c, "")
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "empty id -> INVALID_ARGUMENT")
    code, _ = c.code_of(status, c, "x" * 65)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "65-byte id -> INVALID_ARGUMENT")
    for garbage in (b"\xff\xff\xff\xff", b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80", b"\x0a\x05ab"):
        code, _ = c.code_of(c.call, "GetTransferStatus", garbage, S, raw=True)
        check(code == grpc.StatusCode.INVALID_ARGUMENT, "garbage %r -> INVALID_ARGUMENT (%s)" % (garbage, code))
    code, _ = c.code_of(c.call, "SendChunk", b"\x12\xff", pb.SendChunkReply, raw=True)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "garbage SendChunk -> INVALID_ARGUMENT")
    code, _ = c.code_of(c.call, "Nope", b"", S, raw=True)
    check(code == grpc.StatusCode.UNIMPLEMENTED, "unknown method -> UNIMPLEMENTED (%s)" % code)
    code, _ = c.code_of(status, c, "y" * (100 * 1024))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, "100 KiB request -> RESOURCE_EXHAUSTED (%s)" % code)


def blake3(data):
    # the server's digest is checked against this; computed with b3sum when
    # present, else by asking the C side is impossible: use hashlib if it has it
    import hashlib
    if hasattr(hashlib, "blake3"):
        return hashlib.blake3(data).digest()
    out = subprocess.run(["b3sum", "--no-names", "--raw"], input=data,
                         capture_output=True, check=True).stdout
    return out[:32]


def test_chunk(c):
    data = bytes(range(256)) * 64  # 16 KiB
    d = blake3(data)
    r = c.call("SendChunk", pb.SendChunkRequest(session_id="s1", file_id=2, chunk_index=7,
                                                data=data, digest=d), pb.SendChunkReply)
    check(r.accepted and r.reason == "", "SendChunk accepted")
    r = c.call("SendChunk", pb.SendChunkRequest(session_id="s9", file_id=2, chunk_index=7,
                                                data=data, digest=d), pb.SendChunkReply)
    check(not r.accepted and r.reason == "unknown session", "SendChunk rejected with reason")
    bad = bytes([d[0] ^ 1]) + d[1:]
    code, det = c.code_of(c.call, "SendChunk", pb.SendChunkRequest(
        session_id="s1", file_id=2, chunk_index=8, data=data, digest=bad), pb.SendChunkReply)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and det == "digest mismatch",
          "bad digest -> INVALID_ARGUMENT (%s %s)" % (code, det))
    code, _ = c.code_of(c.call, "SendChunk", pb.SendChunkRequest(
        session_id="s1", data=data, digest=d[:31]), pb.SendChunkReply)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "31-byte digest -> INVALID_ARGUMENT")
    # 16 MiB + 1 of data: within the message bound, beyond a chunk
    big = b"\0" * (16 * 1024 * 1024 + 1)
    code, _ = c.code_of(c.call, "SendChunk", pb.SendChunkRequest(
        session_id="s1", data=big, digest=b"\0" * 32), pb.SendChunkReply, timeout=30)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "16 MiB+1 chunk -> INVALID_ARGUMENT (%s)" % code)
    huge = b"\0" * (33 * 1024 * 1024)
    code, _ = c.code_of(c.call, "SendChunk", pb.SendChunkRequest(
        session_id="s1", data=huge, digest=b"\0" * 32), pb.SendChunkReply, timeout=30)
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, "33 MiB message -> RESOURCE_EXHAUSTED (%s)" % code)
    # a large valid chunk goes through (4 MiB)
    data = os.urandom(4 * 1024 * 1024)
    r = c.call("SendChunk", pb.SendChunkRequest(session_id="s1", file_id=3, chunk_index=0,
                                                data=data, digest=blake3(data)),
               pb.SendChunkReply, timeout=30)
    check(r.accepted, "4 MiB chunk accepted")


def test_control(c):
    r = c.call("SendFile", pb.SendFileRequest(paths=["/data/a", "/data/b"], peer="10.0.0.9:7000",
                                              peer_id="ab12", priority=pb.PRIORITY_HIGH),
               pb.SendFileReply)
    check(r.id == "t4", "SendFile id (%r)" % r.id)
    s = status(c, r.id)
    check(s.state == pb.TRANSFER_STATE_IDLE and s.priority == pb.PRIORITY_HIGH
          and s.peer == "10.0.0.9:7000", "new transfer status")
    code, _ = c.code_of(c.call, "SendFile", pb.SendFileRequest(paths=[], peer="h:1"), pb.SendFileReply)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "SendFile without paths")
    code, det = c.code_of(c.call, "SendFile", pb.SendFileRequest(paths=["/x"], peer="nocolon"),
                          pb.SendFileReply)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "host:port" in det, "SendFile handler check")
    code, _ = c.code_of(c.call, "SendFile", pb.SendFileRequest(paths=["/x"], peer="h:1", priority=9),
                        pb.SendFileReply)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "SendFile unknown priority")

    r = c.call("Pause", pb.TransferIdRequest(id="t1"), S)
    check(r.state == pb.TRANSFER_STATE_PAUSED, "Pause t1")
    code, _ = c.code_of(c.call, "Pause", pb.TransferIdRequest(id="t3"), S)
    check(code == grpc.StatusCode.FAILED_PRECONDITION, "Pause completed -> FAILED_PRECONDITION")
    code, _ = c.code_of(c.call, "Resume", pb.TransferIdRequest(id="zz"), S)
    check(code == grpc.StatusCode.NOT_FOUND, "Resume unknown -> NOT_FOUND")
    r = c.call("Resume", pb.TransferIdRequest(id="t1"), S)
    check(r.state == pb.TRANSFER_STATE_TRANSFERRING, "Resume t1")
    r = c.call("Cancel", pb.TransferIdRequest(id="t4"), S)
    check(r.state == pb.TRANSFER_STATE_FAILED and r.error == "cancelled", "Cancel t4")

    L = pb.ListTransfersReply
    r = c.call("ListTransfers", pb.ListTransfersRequest(), L)
    ids = [t.id for t in r.transfers]
    check(ids == ["t1", "t2", "t3", "w1", "t4"] and not r.truncated, "ListTransfers all (%r)" % ids)
    r = c.call("ListTransfers", pb.ListTransfersRequest(state=pb.TRANSFER_STATE_PAUSED), L)
    check([t.id for t in r.transfers] == ["t2"], "ListTransfers PAUSED")
    r = c.call("ListTransfers", pb.ListTransfersRequest(state=pb.TRANSFER_STATE_FAILED), L)
    check([t.id for t in r.transfers] == ["t4"] and r.transfers[0].error == "cancelled",
          "ListTransfers FAILED")
    code, _ = c.code_of(c.call, "ListTransfers", pb.ListTransfersRequest(state=42), L)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "ListTransfers unknown state")


def test_watch(c):
    got = list(c.stream("WatchTransfer", pb.WatchTransferRequest(id="w1"), S))
    chunks = [m.chunks_done for m in got]
    check(chunks == [1, 2, 3, 4, 5], "watch updates %r" % chunks)
    check(got and got[-1].state == pb.TRANSFER_STATE_COMPLETED, "watch ends COMPLETED")
    check(all(m.state == pb.TRANSFER_STATE_TRANSFERRING for m in got[:-1]), "watch states")
    # an unknown transfer ends the stream at once
    try:
        list(c.stream("WatchTransfer", pb.WatchTransferRequest(id="nope"), S))
        check(False, "watch unknown -> NOT_FOUND")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, "watch unknown -> NOT_FOUND (%s)" % e.code())
    # a transfer that never changes: one message, then the client cancels
    it = c.stream("WatchTransfer", pb.WatchTransferRequest(id="t2"), S, timeout=30)
    first = next(it)
    check(first.id == "t2" and first.state == pb.TRANSFER_STATE_PAUSED, "watch t2 first")
    it.cancel()
    try:
        next(it)
        check(False, "cancelled watch yields nothing more")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.CANCELLED, "cancelled watch")
    # already terminal: exactly one message
    got = list(c.stream("WatchTransfer", pb.WatchTransferRequest(id="t3"), S))
    check(len(got) == 1 and got[0].state == pb.TRANSFER_STATE_COMPLETED, "watch terminal")
    code, _ = c.code_of(lambda: list(c.stream("WatchTransfer", pb.WatchTransferRequest(id="w1"),
                                             S, md=())))
    check(code == grpc.StatusCode.UNAUTHENTICATED, "watch without token")


def bench(c):
    req = pb.GetTransferStatusRequest(id="t1")
    f = c.ch.unary_unary(SVC + "GetTransferStatus",
                         request_serializer=lambda m: m.SerializeToString(),
                         response_deserializer=S.FromString)
    n = int(os.environ.get("SFT_GRPC_BENCH_N", "2000"))
    for _ in range(100):
        f(req, metadata=c.md)
    t = time.perf_counter()
    for _ in range(n):
        f(req, metadata=c.md)
    seq = n / (time.perf_counter() - t)
    nthreads = 4
    def worker():
        for _ in range(n // nthreads):
            f(req, metadata=c.md)
    ths = [threading.Thread(target=worker) for _ in range(nthreads)]
    t = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    par = (n // nthreads) * nthreads / (time.perf_counter() - t)
    # futures: many calls in flight on one channel
    t = time.perf_counter()
    futs = [f.future(req, metadata=c.md) for _ in range(n)]
    for fu in futs:
        fu.result()
    fut = n / (time.perf_counter() - t)
    print("grpc_status_seq_calls_per_s=%.0f" % seq)
    print("grpc_status_%dthreads_calls_per_s=%.0f" % (nthreads, par))
    print("grpc_status_async_calls_per_s=%.0f" % fut)


def inflight(c):
    """Open calls that only the server's shutdown can end, then READY."""
    results = []
    lock = threading.Lock()
    watches = [c.stream("WatchTransfer", pb.WatchTransferRequest(id="t2"), S, timeout=60)
               for _ in range(3)]
    for w in watches:
        next(w)  # the first status arrived: the stream is open on the server
    stop = threading.Event()
    f = c.ch.unary_unary(SVC + "GetTransferStatus",
                         request_serializer=lambda m: m.SerializeToString(),
                         response_deserializer=S.FromString)

    def hammer():
        while not stop.is_set():
            try:
                f(pb.GetTransferStatusRequest(id="t1"), metadata=c.md, timeout=20)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            with lock:
                results.append(code)
            if code != grpc.StatusCode.OK:
                return
    ths = [threading.Thread(target=hammer) for _ in range(4)]
    for th in ths:
        th.start()
    while True:  # wait until the hammers are really running
        with lock:
            if len(results) >= 20:
                break
        time.sleep(0.001)
    t0 = time.monotonic()
    print("READY", flush=True)
    ends = []
    for w in watches:
        try:
            for _ in w:
                pass
            ends.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            ends.append(e.code())
    for th in ths:
        th.join(timeout=20)
        check(not th.is_alive(), "unary caller stuck after shutdown")
    stop.set()
    dt = time.monotonic() - t0
    down = {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}
    check(all(e in down for e in ends), "watch ends at shutdown: %r" % ends)
    with lock:
        bad = [r for r in results if r not in down and r != grpc.StatusCode.OK]
    check(not bad, "unary results at shutdown: %r" % bad[:5])
    check(dt < 15, "shutdown took %.1fs" % dt)
    print("inflight_unary_calls=%d watch_ends=%s" % (len(results), [e.name for e in ends]))


def main():
    port, token = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "all"
    target = "127.0.0.1:" + port
    if mode == "tls":
        with open(sys.argv[4], "rb") as fh:
            ca = fh.read()
        ch = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca),
                                 options=(("grpc.ssl_target_name_override", "localhost"),))
    else:
        ch = grpc.insecure_channel(target)
    c = Client(ch, token)
    if mode == "all":
        test_auth(c, port, token)
        test_status(c)
        test_chunk(c)
        test_control(c)
        test_watch(c)
        bench(c)
    elif mode == "inflight":
        inflight(c)
    elif mode == "tls":
        r = status(c, "t1")
        check(r.id == "t1", "status over TLS")
        code, _ = c.code_of(c.call, "GetTransferStatus", pb.GetTransferStatusRequest(id="t1"), S, md=())
        check(code == grpc.StatusCode.UNAUTHENTICATED, "TLS without token")
        print("tls_ok=1")
    ch.close()
    if FAILS:
        print("%d checks failed" % len(FAILS), file=sys.stderr)
        sys.exit(1)
    print("python client: all checks passed")


if __name__ == "__main__":
    main()
