"""A UDP relay that counts what it forwards, readable while it runs: the
wire-level byte counter of test_paths_api.sh (pause sends no chunk bytes).
Run with /usr/bin/python3.

usage: ctl_udpcount.py LISTEN_PORT TO_PORT STATS_FILE
Listens on 127.0.0.1:LISTEN_PORT (0: any), prints "listening 127.0.0.1:PORT".
Datagrams from the (one, latest) client go to 127.0.0.1:TO_PORT from one
socket; the answers go back to that client. On SIGUSR1 it writes
{"up_bytes", "up_pkts", "down_bytes", "down_pkts"} (up: toward TO_PORT,
UDP payload bytes) to STATS_FILE atomically (temporary file + rename), so a
reader can remove STATS_FILE, signal, and wait for it to appear. Exits on
SIGTERM.
"""
import json
import os
import select
import signal
import socket
import sys

lport, tport, stats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ls.bind(("127.0.0.1", lport))
us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
us.bind(("127.0.0.1", 0))
for s in (ls, us):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setblocking(False)
c = {"up_bytes": 0, "up_pkts": 0, "down_bytes": 0, "down_pkts": 0}
dump = False
stop = False


def on_usr1(*_):
    global dump
    dump = True


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGTERM, on_term)
print("listening 127.0.0.1:%d" % ls.getsockname()[1], flush=True)
client = None
dst = ("127.0.0.1", tport)
while not stop:
    if dump:
        dump = False
        with open(stats + ".tmp", "w") as f:
            json.dump(c, f)
        os.rename(stats + ".tmp", stats)
    try:
        r, _, _ = select.select([ls, us], [], [], 0.05)
    except InterruptedError:
        continue
    for s in r:
        while True:
            try:
                data, addr = s.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            try:
                if s is ls:
                    client = addr
                    us.sendto(data, dst)
                    c["up_bytes"] += len(data)
                    c["up_pkts"] += 1
                elif client:
                    ls.sendto(data, client)
                    c["down_bytes"] += len(data)
                    c["down_pkts"] += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass
