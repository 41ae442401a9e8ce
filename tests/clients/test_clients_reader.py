"""The receive loop (clients/reader.py) reads what asyncio read, and hands back what breaks.

Each transport's subscriber runs twice on the same topic, the same traffic: once
read by the FastReader (its socket taken once the subscription is live), once
through asyncio as before. Both must account the same messages from the same
payload bytes, and the kernel must count the same bytes both ways on both
sockets. A WebSocket ping must be answered while the loop holds the socket (the
server drops a peer whose pong is late), and a cut connection must resume
through the subscriber's own reconnecting path, then be taken by the loop again.
Every test runs with the loop in C (clients/readloop.c) and in Python.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from clients import reader as reader_module
from clients.accounting import RawLog, Samples, SubscriberLog
from clients.fastws import FastWebSocketSubscriber
from clients.longpoll import LongPollSubscriber
from clients.publisher import HttpPublisher
from clients.reader import FastReader, loop_in_c
from clients.sink import Sink
from clients.stream import NDJSONSubscriber, SSESubscriber
from clients.tcpinfo import TcpTally
from duplexbench.contract import make_payload
from duplexbench.machine.parts import find_cc
from duplexbench.netem.link import LinkConfig
from duplexbench.netem.process import ProxyProcess
from duplexbench.procs.server import ServerProcess
from tests._timeouts import scaled

MESSAGES = 16
TRANSPORTS = ("sse", "ndjson", "websocket", "longpoll")
CLASSES = {"sse": (SSESubscriber, b"\n\n"), "ndjson": (NDJSONSubscriber, b"\n"),
           "websocket": (FastWebSocketSubscriber, None), "longpoll": (LongPollSubscriber, None)}


@pytest.fixture(autouse=True, params=["c", "python"])
def loop_kind(request, monkeypatch):
    """The FastReaders a test makes read in C, then in Python (DUPLEXBENCH_READER_C)."""
    monkeypatch.setenv("DUPLEXBENCH_READER_C", "1" if request.param == "c" else "0")
    if request.param == "c" and reader_module.readloop is None:
        pytest.fail("clients/readloop.c was not built (`make setup` builds it with gcc)"
                    if find_cc() else "no C compiler: `make setup` as root installs gcc")
    return request.param


def test_the_loop_runs_in_c_unless_told_not_to(loop_kind):
    async def main() -> bool:
        reader = FastReader()
        try:
            return reader.in_c
        finally:
            reader.close()

    assert asyncio.run(main()) is (loop_kind == "c")


@pytest.fixture(scope="module")
def quiet():
    """Every transport, no heartbeat or ping during a test: the bytes are the messages'."""
    with ServerProcess("all", args=["--heartbeat", "60", "--ping-interval", "60",
                                    "--ping-timeout", "60"]) as server:
        yield server


class _Recording(RawLog):
    """A RawLog that also keeps every piece it is fed (the bytes accounted)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fed: list[bytes] = []

    def feed(self, data: bytes, recv_ns: int) -> None:
        self.fed.append(data)
        super().feed(data, recv_ns)


class _Sub:
    """A subscriber with its accounting: RawLog, samples, kernel counts."""

    def __init__(self, transport: str, url: str, topic: str, reader: FastReader | None) -> None:
        cls, delim = CLASSES[transport]
        self.log = SubscriberLog(0, 0, Samples(), 0, MESSAGES)
        self.raw = _Recording(self.log, delim, limit=7)  # small: flushes happen mid-run too
        self.tcp = TcpTally()
        self.reader = reader
        self.sub = cls(url, topic, lambda e, t: None, on_raw=self.raw, tcp=self.tcp,
                       reader=reader, backoff=(0.01, 0.05))

    def sink(self):
        """The reader's sink of this subscriber's current connection (None: not taken)."""
        if self.reader is None:
            return None
        current = getattr(self.sub, "_conn", None) or getattr(self.sub, "_transport", None)
        return next((s for s in self.reader.sinks.values()
                     if current in (getattr(s, "conn", None), getattr(s, "ws", None))), None)

    def rows(self) -> list[tuple[int, int, int]]:
        s = self.log._samples
        return list(zip(s.seq, s.index, s.sent_ns))


async def _until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_loop_accounts_what_asyncio_accounts_byte_for_byte(quiet, transport, loop_kind):
    topic = f"reader-same-{transport}-{loop_kind}"  # a topic of its own on the shared server

    sinks: set = set()  # the fast subscriber's sinks, while taken

    async def main() -> tuple[_Sub, _Sub, tuple, tuple, bool]:
        reader = FastReader(check_s=0.02)
        fast = _Sub(transport, quiet.url, topic, reader)
        plain = _Sub(transport, quiet.url, topic, None)
        await fast.sub.start()
        await plain.sub.start()
        await asyncio.sleep(0.1)  # a long poll is subscribed once the server holds it
        pub = HttpPublisher(quiet.url, pool_size=1)
        taken = False
        try:
            for i in range(MESSAGES):
                # One at a time, each delivered to both before the next: the same reads on
                # both sides (a long poll answers one message per poll on each).
                await pub.publish(topic, make_payload(i, 40 + 30 * i), time.monotonic_ns())
                await _until(lambda: fast.raw.highest() == plain.raw.highest() == i + 1)
                taken = taken or fast.sink() is not None
                sinks.add(fast.sink())
            # After the last delivery each long poll re-polls at once: whether that request
            # is acked yet is a race (118 B up apart, once beside a loaded make test); both
            # sides' kernel counts must meet (asserted below), within ms when nothing extra
            # was sent.
            settled = asyncio.get_running_loop().time() + scaled(2.0)
            while fast.tcp.total()[:2] != plain.tcp.total()[:2] \
                    and asyncio.get_running_loop().time() < settled:
                await asyncio.sleep(0.005)
            counts = (fast.tcp.total(), plain.tcp.total())
        finally:
            await pub.close()
            await fast.sub.close()
            await plain.sub.close()
            reader.close()
        return fast, plain, counts[0], counts[1], taken

    fast, plain, fast_tcp, plain_tcp, taken = asyncio.run(asyncio.wait_for(main(), scaled(30)))
    assert taken, "the loop never took the subscriber's socket"
    assert fast.rows() == plain.rows() and len(fast.rows()) == MESSAGES
    assert fast.log.highest == MESSAGES and not fast.log.gaps and fast.log.duplicated == 0
    assert b"".join(fast.raw.fed) == b"".join(plain.raw.fed)  # the bytes accounted
    # The kernel's counts: bytes acked (requests, upgrade), bytes received (responses, frames).
    assert fast_tcp[:2] == plain_tcp[:2], (fast_tcp, plain_tcp)
    recv = list(fast.log._samples.recv_ns)
    assert all(r >= s for r, s in zip(recv, fast.log._samples.sent_ns))  # taken at the read
    assert fast.sub.stats.reconnects == 0 and fast.sub.stats.errors == 0
    counted = ("http_requests", "bytes_up", "bytes_down", "connections")
    assert [getattr(fast.sub.stats, k) for k in counted] == \
        [getattr(plain.sub.stats, k) for k in counted]
    if transport == "longpoll":  # the common answer is the C loop's, not httptools'
        answered = sum(getattr(sink, "answered", 0) for sink in sinks if sink is not None)
        assert answered >= MESSAGES - 2 if loop_kind == "c" else answered == 0, answered


def test_pings_are_answered_while_the_loop_holds_the_socket():
    """Pings every 0.3 s, a peer without a pong 0.5 s later dropped: for 2.5 s the
    connection must stay up, taken, with every message delivered."""
    with ServerProcess("websocket", args=["--ping-interval", "0.3", "--ping-timeout", "0.5"]) \
            as server:
        async def main() -> tuple[_Sub, int]:
            reader = FastReader()
            sub = _Sub("websocket", server.url, "reader-ping", reader)
            await sub.sub.start()
            pub = HttpPublisher(server.url, pool_size=1)
            try:
                for i in range(MESSAGES):
                    await pub.publish("reader-ping", make_payload(i, 64), time.monotonic_ns())
                    await asyncio.sleep(2.5 / MESSAGES)
                await _until(lambda: sub.raw.highest() == MESSAGES)
                sink = sub.sink()
                assert sink is not None, "not taken, or dropped and not taken again"
                pongs = sink.pongs
            finally:
                await pub.close()
                await sub.sub.close()
                reader.close()
            return sub, pongs

        sub, pongs = asyncio.run(asyncio.wait_for(main(), scaled(30)))
    assert pongs >= 4  # answered from the loop, as the pings came
    assert sub.sub.stats.reconnects == 0 and sub.sub.stats.errors == 0
    assert len(sub.rows()) == MESSAGES and not sub.log.gaps
    assert sub.sub._listener.answered == 0  # each ping answered once: none again when parsed


def test_a_cut_connection_resumes_and_is_taken_again(quiet, loop_kind):
    """Every connection reset by the proxy: the loop hands each socket back, the
    subscriber resumes from its cursor (nothing lost), the loop takes the new one."""
    host, port = quiet.url.split("//")[1].split(":")
    with ProxyProcess(LinkConfig(), (host, int(port))) as proxy:
        url = f"http://{proxy.address[0]}:{proxy.address[1]}"

        async def main() -> list[_Sub]:
            reader = FastReader()
            subs = [_Sub(t, url, f"reader-cut-{t}-{loop_kind}", reader) for t in TRANSPORTS]
            for s in subs:
                await s.sub.start()
            await asyncio.sleep(0.1)
            pub = HttpPublisher(quiet.url, pool_size=1)  # straight to the server: not cut
            try:
                for i in range(MESSAGES):
                    if i == MESSAGES // 2:
                        await _until(lambda: all(s.sink() is not None for s in subs))
                        before = [s.sink() for s in subs]
                        proxy.cut()
                        await _until(lambda: all(s.sub.stats.reconnects for s in subs))
                    for s in subs:
                        await pub.publish(s.sub.topic, make_payload(i, 64), time.monotonic_ns())
                    await asyncio.sleep(0.02)
                await _until(lambda: all(s.raw.highest() == MESSAGES for s in subs))
                await _until(lambda: all(s.sink() not in (None, b) for s, b in zip(subs, before)))
            finally:
                await pub.close()
                for s in subs:
                    await s.sub.close()
                reader.close()
            return subs

        subs = asyncio.run(asyncio.wait_for(main(), scaled(30)))
    for s in subs:
        assert len(s.rows()) == MESSAGES and not s.log.gaps, s.sub.transport
        assert s.sub.stats.reconnects >= 1


class _Holding(Sink):
    """A sink that keeps its reads (parsing records them)."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self.resumed = 0
        self.parsed: list[bytes] = []

    def replay(self, data: bytes, recv_ns: int) -> None:
        self.parsed.append(bytes(data))

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        self.resumed += 1


class _RaisingSink(_Holding):
    """An immediate sink whose parser raises at its first read (a bug in a callback)."""

    immediate = True

    def replay(self, data: bytes, recv_ns: int) -> None:
        raise ValueError(f"cannot parse {data!r}")


def test_a_parser_that_raises_is_reported_and_its_socket_handed_back():
    """The loop (C or Python) goes on: the exception reaches the event loop's handler, the
    socket goes back to its transport, and a healthy sink beside it keeps its reads."""
    async def main() -> tuple[list[dict], _RaisingSink, Sink]:
        loop = asyncio.get_running_loop()
        errors: list[dict] = []
        loop.set_exception_handler(lambda _, context: errors.append(context))
        bad_pair, good_pair = socket.socketpair(), socket.socketpair()
        reader = FastReader()
        try:
            for sock in (*bad_pair, *good_pair):
                sock.setblocking(False)
            bad, good = _RaisingSink(bad_pair[0].fileno()), _Holding(good_pair[0].fileno())
            assert reader.take(bad) and reader.take(good)
            bad_pair[1].send(b"not http")
            good_pair[1].send(b"kept")
            await _until(lambda: errors and len(good.store))
            return errors, bad, good
        finally:
            reader.close()
            for sock in (*bad_pair, *good_pair):
                sock.close()

    errors, bad, good = asyncio.run(asyncio.wait_for(main(), scaled(10)))
    assert "parsing a read" in errors[0]["message"], errors
    assert isinstance(errors[0]["exception"], ValueError), errors
    assert bad.resumed == 1 and not bad.taken
    # The C loop keeps a taken sink's reads in its C store (clients/readstore.c).
    assert (type(good.store).__name__ == "ReadStore") == loop_in_c()
    # Kept until the reader closed, then parsed as read.
    assert good.parsed == [b"kept"] and good.resumed == 1


def test_the_reader_lingers_only_for_fan_out_bursts():
    """Long polls come one answer at a time and messages sent up a subscriber's own socket
    leave from the event loop: neither waits in the reader; streams and WebSocket fan-out do."""
    assert reader_module.linger_ms_for("longpoll", False) == 0
    assert reader_module.linger_ms_for("websocket", True) == 0
    for transport in ("sse", "ndjson", "websocket", "tcp"):
        assert reader_module.linger_ms_for(transport, False) == reader_module.LINGER_MS
