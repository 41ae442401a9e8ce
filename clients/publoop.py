"""The publisher's loop: open-loop POSTs (or publish-only WebSockets) at their due times.

What the publisher process (clients.pubproc) runs: :class:`Publisher` sends each message at its
scheduled time on keep-alive connections, reads answers between sends, and records when each
message left and whether it was accepted. The HTTP/2 mode (clients.h2pub) is a subclass.
See clients.pubproc for why the publisher is a process of its own.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import time
from collections import deque

import httptools
import numpy as np

from duplexbench.contract import make_payload
from duplexbench.contract.http import PATH_PUBLISH

from .base import parse_base_url
from .plan import ROUTE_WS_PUB, make_plan
from .schedule import make_schedule
from .spec import LoadSpec
from .tcpinfo import TcpTally

__all__ = ["ANSWER_WAIT_S", "MARGIN_MAX_NS", "Publisher", "Stopped", "priority"]

#: A non-blocking socket (plain or TLS) with nothing to read / no room to write.
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

#: The early wake-up margin never exceeds this (a long stall is not the timer's).
MARGIN_MAX_NS = 200_000
#: How long the end of publishing waits for the last answers.
ANSWER_WAIT_S = 5.0


def priority() -> str:
    """Wake ahead of the subscribers when sharing their core.

    On a machine with no core to spare the publisher shares one with the
    subscriber process; under the default scheduler its wake-up then waits
    while a burst of deliveries is being read, and that wait would be counted
    as the transport's latency. SCHED_FIFO (priority 1) lets it preempt them
    at once; it runs for microseconds per message, so it cannot starve them.
    Needs CAP_SYS_NICE: otherwise try a lower nice value, else leave it.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return "SCHED_FIFO 1"
    except (OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice -10"
    except (OSError, AttributeError):
        return "default"


class _Post:
    """One keep-alive connection to POST /publish (non-blocking, httptools)."""

    def __init__(self, pub: "Publisher", sock: socket.socket) -> None:
        self.pub = pub
        self.sock = sock
        self.parser = httptools.HttpResponseParser(self)
        self.index = -1  # the publish in flight (-1: idle)
        self.body = b""
        self.status = 0
        self.out = b""  # bytes not yet accepted by the kernel

    def on_status(self, _status: bytes) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.pub.answered(self, self.status, self.body)
        self.body = b""


class Publisher:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.plan = make_plan(spec)
        self.schedule = make_schedule(spec.rate, spec.warmup_s, spec.duration_s, spec.arrival,
                                      spec.seed)
        n = len(self.schedule)
        self.topic_of = self.plan.topic_of(n, spec).tolist()
        self.sent_ns = np.zeros(n, dtype=np.int64)
        self.ok = np.zeros(n, dtype=bool)
        self.seq = np.zeros(n, dtype=np.int64)
        self.sent = 0
        self.errors: list[str] = []
        self.error_count = 0
        self.tcp = TcpTally()
        self.endpoint = parse_base_url(spec.publish_url)
        self.ws = self.plan.route == ROUTE_WS_PUB  # publish-only WebSocket / TCP connections
        self.tcp_port = 0  # the TCP listener's (transport tcp), from /healthz
        self.conns: list = []
        self.idle: deque = deque()
        self.waiting: deque[int] = deque()  # due messages waiting for a free connection
        self.in_flight = 0
        self.next_ws_check = 0
        self.stop_requested = False
        self.interruptible = False
        self.margin_ns = 0  # how early sleeps aim (the mean wake-up lateness)
        self.payloads = [make_payload(i, spec.payload_bytes).encode() for i in range(n)]
        host = self.endpoint.authority.encode()
        self.heads = [b"POST %s?topic=%s&ts=" % (PATH_PUBLISH.encode(), t.encode())
                      for t in self.plan.topics]
        self.head_tail = (b" HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                          b"Content-Length: " % host)

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < 20:
            self.errors.append(message)

    # Connections

    def connect(self) -> None:
        if self.ws:
            for topic in self.plan.topics:
                self.conns.append(self._frame_conn(topic))
            return
        for _ in range(self.spec.publish_pool):
            self._open_post(10.0)

    def _frame_conn(self, topic: str, again: bool = False):
        """A publish-only connection of the transport: a WebSocket (?subscribe=0) or a TCP
        connection ("subscribe":false, its port from /healthz: asked once, and ``again``
        after a lost connection, since a restarted server may listen elsewhere)."""
        ctx = self.spec.ssl_context()
        if self.spec.transport == "tcp":
            from .tcppub import BlockingTCPPublisher, healthz_tcp_port
            if again or not self.tcp_port:
                self.tcp_port = healthz_tcp_port(self.spec.publish_url, ctx)
            return BlockingTCPPublisher((self.endpoint.host, self.tcp_port), topic, self.tcp, ctx)
        from .wspub import BlockingWSPublisher
        return BlockingWSPublisher((self.endpoint.host, self.endpoint.port), self.endpoint.authority,
                                   topic, self.tcp, ctx)

    def _open_post(self, timeout: float) -> None:
        sock = socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = self.spec.ssl_context()
        if ctx is not None:  # https: verify the server against ca_file
            sock = ctx.wrap_socket(sock, server_hostname=self.endpoint.host)
        sock.setblocking(False)
        self.tcp.add(sock)
        conn = _Post(self, sock)
        self.conns.append(conn)
        self.idle.append(conn)

    # Sending

    def send(self, i: int) -> None:
        if self.ws:
            ts = time.monotonic_ns()
            k = self.topic_of[i]
            try:
                if self.conns[k] is None:  # lost earlier: reconnect (fails fast while down)
                    self.conns[k] = self._frame_conn(self.plan.topics[k], again=True)
                self.conns[k].send(self.payloads[i], ts)
            except OSError as exc:
                self.sent += 1  # attempted: counted as publish_failed, not as lost
                self.error(f"publish {i} not sent: {exc}")
                if self.conns[k] is not None:
                    self.tcp.retire(self.conns[k].sock)
                    self.conns[k].sock.close()
                    self.conns[k] = None
                return
            self.sent += 1
            self.sent_ns[i] = ts
            self.ok[i] = True
            return
        if not self.idle and len(self.conns) < self.spec.publish_pool:
            try:  # a connection was lost (e.g. a server restart): open another
                self._open_post(1.0)
            except OSError as exc:
                if not self.conns:
                    self.sent += 1  # attempted: counted as publish_failed, not as lost
                    self.error(f"publish {i} not sent: {exc}")
                    return
        if not self.idle:
            self.waiting.append(i)
            return
        self._post(self.idle.popleft(), i)

    def _post(self, conn: _Post, i: int) -> None:
        ts = time.monotonic_ns()
        body = self.payloads[i]
        conn.index = i
        request = b"%s%d%s%d\r\n\r\n%s" % (self.heads[self.topic_of[i]], ts, self.head_tail,
                                           len(body), body)
        self.sent += 1
        self.in_flight += 1
        self.sent_ns[i] = ts
        try:
            sent = conn.sock.send(request)
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._failed(conn, f"POST {i} failed: {exc}")
            return
        conn.out = request[sent:]

    def answered(self, conn: _Post, status: int, body: bytes) -> None:
        i = conn.index
        conn.index = -1
        self.in_flight -= 1
        if status == 200:
            try:
                self.seq[i] = json.loads(body)["seq"]
                self.ok[i] = True
            except (ValueError, KeyError, TypeError):
                self.error(f"POST {i}: bad answer {body[:100]!r}")
        else:
            self.error(f"POST {i} answered {status}: {body[:200]!r}")
        if self.waiting:
            self._post(conn, self.waiting.popleft())
        else:
            self.idle.append(conn)

    def _failed(self, conn: _Post, message: str) -> None:
        self.error(message)
        if conn.index >= 0:
            self.in_flight -= 1
            conn.index = -1
        self.tcp.retire(conn.sock)
        conn.sock.close()
        self.conns.remove(conn)

    # Waiting: for the next due time or for answers

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` s, handling answers (and pongs) meanwhile."""
        if self.ws:
            live = [c for c in self.conns if c is not None]
            readable, _, _ = select.select([c.sock for c in live], [], [], max(0.0, timeout))
            for c in live:
                if c.sock in readable:
                    try:
                        c.receive()
                    except OSError:
                        pass  # the next send finds out and reconnects
            return
        socks = [c.sock for c in self.conns]
        writers = [c.sock for c in self.conns if c.out]
        readable, writable, _ = select.select(socks, writers, [], max(0.0, timeout))
        for conn in list(self.conns):
            if conn.sock in writable and conn.out:
                try:
                    n = conn.sock.send(conn.out)
                    conn.out = conn.out[n:]
                except _WOULD_BLOCK:
                    pass
                except OSError as exc:
                    self._failed(conn, f"POST {conn.index} failed: {exc}")
                    continue
            if conn.sock in readable:
                try:
                    data = conn.sock.recv(65536)
                except _WOULD_BLOCK:
                    continue
                except OSError as exc:
                    data = b""
                    self.error(f"publisher connection: {exc}")
                if not data:
                    self._failed(conn, "the server closed a publisher connection")
                    continue
                try:
                    conn.parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    self._failed(conn, f"bad HTTP answer: {exc}")

    def collect(self) -> None:
        """Read whatever answers (or pings) have arrived, without waiting."""
        now = time.monotonic_ns()
        if self.ws:
            if now >= self.next_ws_check:  # pings are rare: look every 100 ms
                self.next_ws_check = now + 100_000_000
                self.pump(0.0)
            return
        if self.in_flight:  # one recv per busy connection: cheaper than select + recv
            for conn in [c for c in self.conns if c.index >= 0 and not c.out]:
                try:
                    data = conn.sock.recv(65536)
                except _WOULD_BLOCK:
                    continue
                except OSError as exc:
                    self._failed(conn, f"POST {conn.index} failed: {exc}")
                    continue
                if not data:
                    self._failed(conn, "the server closed a publisher connection")
                    continue
                try:
                    conn.parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    self._failed(conn, f"bad HTTP answer: {exc}")
            if any(c.out for c in self.conns):
                self.pump(0.0)

    def wait_until(self, deadline_ns: int) -> None:
        """Sleep to the deadline: ``time.sleep`` (clock_nanosleep, 1 us slack)
        when nothing needs an answer to proceed, else ``select`` on the sockets.

        A wake-up comes late by the kernel's wake-up latency (tens of us on a VM,
        more on a busy core), so the sleep aims ``margin`` early, the running
        mean of that lateness, and the rest is a short spin: on time without
        spinning through the whole gap (spinning bills the load generator CPU).
        """
        target = deadline_ns - self.margin_ns
        while (left := target - time.monotonic_ns()) > 0:
            self.interruptible = True
            try:
                if self.stop_requested:
                    raise Stopped
                if self.waiting and not self.idle:
                    self.pump(left / 1e9)  # every connection busy: an answer frees one
                else:
                    time.sleep(left / 1e9)
                    woke = time.monotonic_ns()
                    late = min(MARGIN_MAX_NS, max(0, woke - target))
                    self.margin_ns += (late - self.margin_ns) >> 3  # mean of the last ~8
            finally:
                self.interruptible = False
        monotonic_ns = time.monotonic_ns
        while monotonic_ns() < deadline_ns:  # at most ~margin: the last microseconds
            pass

    def on_stop_signal(self, signum, frame) -> None:
        self.stop_requested = True
        if self.interruptible:  # only while sleeping or waiting for the parent
            self.interruptible = False
            raise Stopped

    def send_due(self, lo: int, hi: int, base_ns: int) -> None:
        offsets = self.schedule.offsets_ns[lo:hi].tolist()  # Python ints in the loop
        for i, offset in enumerate(offsets, lo):
            self.wait_until(base_ns + offset)
            self.send(i)  # first: reading earlier answers is not time-critical
            self.collect()

    def sleep_until(self, deadline_ns: int) -> None:
        self.wait_until(deadline_ns)
        self.collect()

    def wait_answers(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (self.in_flight or self.waiting) and time.monotonic() < deadline and self.conns:
            self.pump(0.01)


class Stopped(Exception):
    """The parent asked (SIGUSR1) or a supervisor signalled (SIGTERM): stop sending."""
