"""A minimal reference client: the latency the engine should come close to.

``python -m clients.minimal BASE_URL TOPIC SUBSCRIBERS RATE SECONDS OUT.json``
runs ``SUBSCRIBERS`` picows WebSocket subscribers (compiled frame parsing, the
receive time taken first thing in the frame callback, nothing else done per
message) and a publisher in a process of its own (``python -m clients.minimal
pub ...``: a blocking keep-alive POST per message, ``ts`` stamped just before
the write, ``time.sleep`` to each due time). Latency = receive time - ``ts``.
It shares no code with the engine on purpose (only the wire contract): it is
what the engine's WebSocket latency is checked against
(``python -m duplexbench engines --latency``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

__all__ = ["main"]


def publish(base_url: str, topic: str, rate: float, seconds: float) -> int:
    """The reference publisher: open loop, one POST per message, ts = send time."""
    import ctypes
    try:
        ctypes.CDLL(None).prctl(29, 1000)  # 1 us timer slack: sleeps end on time
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        pass
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = f"POST /publish?topic={topic}&ts=".encode()
    tail = f" HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: 64\r\n\r\n".encode()
    body = b"x" * 64
    start = time.monotonic_ns() + 50_000_000
    step = 1e9 / rate
    for i in range(int(rate * seconds)):
        due = start + int(i * step)
        while (left := due - time.monotonic_ns()) > 0:
            time.sleep(left / 1e9)
        sock.sendall(b"%s%d%s%s" % (head, time.monotonic_ns(), tail, body))
        answer = sock.recv(4096)  # ~0.1 ms: the answer is back long before the next due
        if not answer:
            return 1
    return 0


async def subscribe(base_url: str, topic: str, n: int, rate: float, seconds: float) -> dict:
    from picows import WSListener, WSMsgType, ws_connect

    recv: list[tuple[int, bytes]] = []
    monotonic_ns = time.monotonic_ns

    class Listener(WSListener):
        def on_ws_frame(self, transport, frame):
            t = monotonic_ns()
            if frame.msg_type == WSMsgType.TEXT:
                recv.append((t, frame.get_payload_as_bytes()))

    ws_url = base_url.replace("http://", "ws://") + f"/ws?topic={topic}"
    conns = [await ws_connect(Listener, ws_url) for _ in range(n)]
    pub = subprocess.Popen([sys.executable, "-m", "clients.minimal", "pub", base_url, topic,
                            str(rate), str(seconds)])
    while pub.poll() is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # stragglers
    for transport, _ in conns:
        transport.disconnect()
    sent = []
    for t, payload in recv:
        i = payload.index(b'"ts":') + 5
        sent.append((int(payload[i:payload.index(b",", i)]), t))
    # The first second is warm-up (connections, caches): not measured.
    first = min((ts for ts, _ in sent), default=0) + 1_000_000_000
    lat = sorted(t - ts for ts, t in sent if ts >= first)
    return {"subscribers": n, "messages": len(lat), "expected": n * int(rate * seconds),
            "lat_p50_ms": lat[len(lat) // 2] / 1e6 if lat else None,
            "lat_p99_ms": lat[int(len(lat) * 0.99)] / 1e6 if lat else None}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "pub":
        return publish(args[1], args[2], float(args[3]), float(args[4]))
    if len(args) != 6:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    base_url, topic, n, rate, seconds, out = args
    import uvloop
    result = uvloop.run(subscribe(base_url, topic, int(n), float(rate), float(seconds)))
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
