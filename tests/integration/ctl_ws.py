"""Records the events of the daemon's WebSocket /ws, one JSON object per
line (each with "_t": arrival time, Unix seconds), flushed as they arrive.
Run by test_paths_api.sh / test_ctl.sh with /usr/bin/python3.

usage: ctl_ws.py API TOKEN OUT READY_FILE TIMEOUT_S [TOPIC]
Connects with the bearer header, subscribes to TOPIC if given (waits for the
Subscribed answer), creates READY_FILE, then records until TIMEOUT_S passes,
the server closes, or SIGTERM. Exit 0 unless the connection failed.
"""
import json
import signal
import sys
import time

import websocket

api, tok, out, ready, timeout = sys.argv[1:6]
topic = sys.argv[6] if len(sys.argv) > 6 else None
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
ws = websocket.create_connection("ws://%s/ws" % api, timeout=10,
                                 header=["Authorization: Bearer " + tok])
f = open(out, "w")
if topic:
    ws.send(json.dumps({"subscribe": topic}))
    ev = json.loads(ws.recv())
    assert ev.get("type") == "Subscribed" and topic in ev["topics"], ev
open(ready, "w").close()
ws.settimeout(0.2)
deadline = time.time() + float(timeout)
while not stop and time.time() < deadline:
    try:
        msg = ws.recv()
    except websocket.WebSocketTimeoutException:
        continue
    except (websocket.WebSocketConnectionClosedException, OSError):
        break
    ev = json.loads(msg)
    ev["_t"] = time.time()
    f.write(json.dumps(ev) + "\n")
    f.flush()
f.close()
try:
    ws.close(timeout=1)
except Exception:
    pass
