"""What the HTTP/2 tests share: drive the h2 subscribers of every transport over one page,
compare the client's socket counts with TCP_INFO, run a load point, ask curl.

A module of its own (like _timeouts.py): the Node and nginx HTTP/2 tests run the same
checks against two different servers.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time

from _timeouts import scaled
from clients.h2conn import H2ClientConnection
from clients.h2sub import H2Link, H2LongPollSubscriber, H2NDJSONSubscriber, H2SSESubscriber
from clients.h2ws import H2WebSocketSubscriber
from clients.spec import LoadSpec
from clients.tcpinfo import TcpTally

__all__ = ["H2_CLASSES", "curl", "curl_http2", "deliver_over_one_page", "loadgen",
           "resume_after_drop", "socket_counts_match_tcp_info"]

#: What tcpi_bytes_acked holds on a connecting socket before any byte was sent: the SYN.
SYN = 1
H2_CLASSES = {"longpoll": H2LongPollSubscriber, "sse": H2SSESubscriber,
              "ndjson": H2NDJSONSubscriber, "websocket": H2WebSocketSubscriber}


async def deliver_over_one_page(url: str, ssl_context, transports: list[str], topic: str,
                                count: int = 5) -> tuple[dict[str, list[int]], H2Link, list]:
    """One subscriber per transport on one HTTP/2 connection (a page), ``count`` messages
    published on it (POST streams): every subscriber's seqs, in arrival order."""
    link = H2Link(url, ssl_context=ssl_context)
    got: dict[str, list[int]] = {t: [] for t in transports}
    subs = []
    try:
        for t in transports:
            sub = H2_CLASSES[t](url, topic, lambda env, ns, t=t: got[t].append(env.seq),
                                ssl_context=ssl_context, link=link)
            await sub.start()
            subs.append(sub)
        await asyncio.sleep(0.1)  # a long poll is subscribed once the server holds it
        for i in range(count):
            await subs[0].publish(f"h2-{i}", time.monotonic_ns())
        deadline = time.monotonic() + scaled(5)
        while any(len(v) < count for v in got.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return got, link, [s.stats.snapshot() for s in subs]
    finally:
        for sub in subs:
            await sub.close()


async def socket_counts_match_tcp_info(url: str, topic: str) -> tuple[tuple, tuple]:
    """An h2c exchange (preface, SETTINGS, an SSE stream, POSTs, polls, WINDOW_UPDATEs) on one
    connection: (bytes the protocol wrote and read since it connected, what TCP_INFO says the
    kernel sent and received on that socket), once both settle. Both count from the start
    of the connection, so no window edge can split a read; the kernel's acked count starts
    at 1 on a connecting socket (its SYN takes one sequence number), which is taken off."""
    tally = TcpTally()
    link = H2Link(url, tcp=tally)
    sse = H2SSESubscriber(url, topic, lambda env, ns: None, link=link)
    poll = H2LongPollSubscriber(url, topic, lambda env, ns: None, link=link)
    try:
        await sse.start()
        conn: H2ClientConnection = link.conn
        await poll.start()
        for i in range(20):
            await sse.publish("y" * (i * 50), time.monotonic_ns())
        await asyncio.sleep(0.2)
        deadline = time.monotonic() + scaled(3)
        while True:  # the kernel's acked count catches up with what was written
            counts = tally.total()
            counts = (counts[0] - SYN, counts[1])
            ours = (conn.stats.bytes_up, conn.stats.bytes_down)
            if (counts[0], counts[1]) == ours or time.monotonic() > deadline:
                return ours, (counts[0], counts[1])
            await asyncio.sleep(0.01)
    finally:
        await poll.close()
        await sse.close()


def loadgen(spec: LoadSpec, tmp_path) -> dict:
    """``python -m clients.loadgen SPEC.json OUT`` for one point; its counters.json."""
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec.to_json())
    proc = subprocess.run([sys.executable, "-m", "clients.loadgen", str(spec_path),
                           str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=scaled(60))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "out" / "counters.json").read_text())


def curl_http2() -> str | None:
    """Why curl cannot check HTTP/2 here, or None when it can."""
    if shutil.which("curl") is None:
        return "curl is not installed"
    features = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    return None if "HTTP2" in features else "this curl has no HTTP/2 (nghttp2)"


def curl(*args: str) -> tuple[str, str]:
    """curl -sS with ``args``; (the response head as curl prints it, the body)."""
    done = subprocess.run(["curl", "-sS", "-i", "--max-time", str(scaled(5)), *args],
                          capture_output=True, text=True, timeout=scaled(10))
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    return head, body


async def resume_after_drop(url: str, ssl_context, transports: list[str], topic: str,
                            before: int = 3, during: int = 3) -> tuple[dict, list, H2Link]:
    """A page of subscribers loses its connection (aborted, as a network failure would) while
    messages are published elsewhere: each resumes from its cursor on one new connection."""
    link = H2Link(url, ssl_context=ssl_context)
    publisher = H2LongPollSubscriber(url, topic, lambda env, ns: None, ssl_context=ssl_context)
    got: dict[str, list[int]] = {t: [] for t in transports}
    subs = []
    try:
        for t in transports:
            sub = H2_CLASSES[t](url, topic, lambda env, ns, t=t: got[t].append(env.seq),
                                ssl_context=ssl_context, link=link, backoff=(0.05, 0.2))
            await sub.start()
            subs.append(sub)
        await asyncio.sleep(0.1)
        for i in range(before):
            await publisher.publish(f"b{i}", time.monotonic_ns())
        await _until(lambda: all(len(v) >= before for v in got.values()))
        link.abort()
        for i in range(during):  # published while the page is disconnected
            await publisher.publish(f"d{i}", time.monotonic_ns())
        await _until(lambda: all(len(v) >= before + during for v in got.values()))
        return got, [s.stats.snapshot() for s in subs], link
    finally:
        for sub in subs:
            await sub.close()
        await publisher.close()


async def _until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + scaled(seconds)
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
