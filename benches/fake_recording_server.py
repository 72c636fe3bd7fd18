"""A fast fake of Twilio's recording downloads for the benchmarks: asyncio, HTTP/1.1 keep-alive.

Every GET of a recording path (anything but `/__stats`) answers, after `--latency` seconds,
200 with a `--size`-byte body, sent in 256 KiB pieces (so a 50 MB body is never copied whole).
Requests without the expected basic-auth header get 401. `GET /__stats` returns JSON counters
(requests, bytes, in flight, most in flight, the process' CPU seconds); `GET /__reset` zeroes
them. One process, one event loop: with 100 ms latency the loop is idle most of the time, and
the harness reports its CPU use per request so a saturated server would show.

    python fake_recording_server.py --size 262144 --latency 0.1 --auth 'Basic ...' --port-file F
"""

import argparse
import asyncio
import json
import os
import signal

PIECE = 256 * 1024


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.requests = 0
        self.bytes = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.unauthorized = 0
        self.connections = 0

    def as_dict(self):
        t = os.times()
        return {"requests": self.requests, "bytes": self.bytes, "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight, "unauthorized": self.unauthorized,
                "connections": self.connections, "cpu_seconds": t.user + t.system}


async def serve(args):
    stats = Stats()
    body = memoryview(b"\x05" * min(args.size, PIECE))
    auth = args.auth.encode() if args.auth else None

    async def respond_small(writer, code, reason, payload=b"", ctype=b"application/octet-stream", close=False):
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                     % (code, reason, ctype, len(payload), b"Connection: close\r\n" if close else b""))
        if payload:
            writer.write(payload)
        await writer.drain()

    async def handle(reader, writer):
        stats.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                parts = line.split()
                headers = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.partition(b":")
                    headers[k.strip().lower()] = v.strip()
                if len(parts) < 3:
                    return
                path, version = parts[1], parts[2]
                close = headers.get(b"connection", b"").lower() == b"close" or version == b"HTTP/1.0"
                if path.startswith(b"/__stats"):
                    await respond_small(writer, 200, b"OK", json.dumps(stats.as_dict()).encode(),
                                        b"application/json", close)
                elif path.startswith(b"/__reset"):
                    stats.reset()
                    await respond_small(writer, 200, b"OK", b"{}", b"application/json", close)
                elif auth is not None and headers.get(b"authorization") != auth:
                    stats.unauthorized += 1
                    await respond_small(writer, 401, b"Unauthorized", close=close)
                else:
                    stats.requests += 1
                    stats.in_flight += 1
                    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
                    try:
                        if args.latency > 0:
                            await asyncio.sleep(args.latency)
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: %d\r\n%s\r\n"
                                     % (args.size, b"Connection: close\r\n" if close else b""))
                        left = args.size
                        while left > 0:
                            n = min(left, len(body))
                            writer.write(body[:n])
                            left -= n
                            await writer.drain()
                        stats.bytes += args.size
                    finally:
                        stats.in_flight -= 1
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096, limit=65536)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(args.port_file + ".tmp", args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256 * 1024)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--auth", default="")
    p.add_argument("--port-file", required=True)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
