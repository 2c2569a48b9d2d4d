#!/usr/bin/env python3
"""badnet_tcpfwd.py LISTEN_PORT TARGET_PORT

TCP forwarder for test_badnet.sh's "UDP blocked" case: listens on TCP
127.0.0.1:LISTEN_PORT (the port number of a UDP proxy that drops every
datagram) and forwards each connection to 127.0.0.1:TARGET_PORT, so a sender
aimed at LISTEN_PORT sees UDP silently dropped and TCP open, like a firewall
that blocks UDP. Prints "listening PORT" once bound (exit 3 if the port is
taken) and, on SIGTERM/SIGINT, "connections N up BYTES down BYTES".
"""
import asyncio
import signal
import sys

stats = {"connections": 0, "up": 0, "down": 0}


async def pipe(reader, writer, key):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            stats[key] += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def handle(cr, cw, target):
    stats["connections"] += 1
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw, "up"), pipe(ur, cw, "down"))


async def main():
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    try:
        server = await asyncio.start_server(
            lambda r, w: handle(r, w, target), "127.0.0.1", listen)
    except OSError as e:
        print(f"cannot listen on {listen}: {e}", file=sys.stderr)
        sys.exit(3)
    print(f"listening {listen}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    print("connections {connections} up {up} down {down}".format(**stats),
          flush=True)


asyncio.run(main())
