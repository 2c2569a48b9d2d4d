"""N concurrent WebSocket clients of the daemon's /ws in one process (one
select loop). Each reads every event; the run ends when every client has
seen the end (TransferCompleted or TransferFailed) of WANT distinct
transfers, or at the deadline.
Latency per delivery = receipt time (wall clock, right after the frame is
read) - the event's "ts" (daemon wall clock when it published), both on
this machine. Run by test_ws_load.sh with /usr/bin/python3.

usage: ws_load_client.py API TOKEN N WANT READY_FILE OUT_JSON TIMEOUT_S
OUT_JSON: {"completed": [[ended ids of client 0], ...],
           "latency_ms": [[id, ms] per TransferCompleted delivery],
           "events": total events read, "closed": clients closed early,
           "examples": {type: [every event of client 0 of that type]}}
"""
import json
import select
import sys
import time

import websocket

api, tok, n, want, ready, out, timeout = sys.argv[1:8]
n, want, timeout = int(n), int(want), float(timeout)
clients = []
for i in range(n):
    ws = websocket.create_connection("ws://%s/ws" % api, timeout=10,
                                     header=["Authorization: Bearer " + tok])
    clients.append(ws)
open(ready, "w").close()

done = [set() for _ in range(n)]
lat = []
examples = {}  # client 0: every event by type
events = 0
closed = 0
by_fd = {ws.sock.fileno(): i for i, ws in enumerate(clients)}
open_fds = set(by_fd)
deadline = time.time() + timeout
linger = None  # once all ends are in: 0.3 s more for trailing (throttled) events
while time.time() < deadline and open_fds and (linger is None or time.time() < linger):
    if linger is None and all(len(d) >= want for d in done):
        linger = time.time() + 0.3
    r, _, _ = select.select(list(open_fds), [], [], 0.1)
    for fd in r:
        i = by_fd[fd]
        try:
            msg = clients[i].recv()
        except websocket.WebSocketConnectionClosedException:
            open_fds.discard(fd)
            closed += 1
            continue
        now_ms = time.time() * 1000.0
        events += 1
        ev = json.loads(msg)
        t = ev.get("type")
        if i == 0:
            examples.setdefault(t, []).append(ev)
        if t in ("TransferCompleted", "TransferFailed"):
            done[i].add(ev["id"])
        if t == "TransferCompleted":
            lat.append([ev["id"], now_ms - ev["ts"]])
for ws in clients:
    try:
        ws.close(timeout=1)
    except Exception:
        pass
json.dump({"completed": [sorted(d) for d in done], "latency_ms": lat,
           "events": events, "closed": closed, "examples": examples},
          open(out, "w"))
