"""Long-polling subscriber: one outstanding ``GET /poll`` at a time (RFC 6202 §2).

Each response carries a batch of envelopes (one ``json.loads`` for the whole
batch) and the next poll resumes from the last seq, so nothing published
between two polls is missed. ``keepalive=False`` opens a new connection with
``Connection: close`` for every poll, the variant RFC 6202 warns about; its
handshakes then show up in the byte and connection counts.

The load generator's fast path (``on_raw`` set, keep-alive): once the epoch is
known, :class:`_Repoll` parses the connection's answers, hands each body to
the RawLog and writes the next poll from inside the parser's callback, the
same request bytes, so a poll costs a few Python calls instead of a Response,
a future, a task wake-up and two coroutines; with the process's FastReader
(clients/reader.py) the socket is read by its loop and parsed at once, so
there is no event-loop callback per poll either.
"""

from __future__ import annotations

import asyncio
import json

from duplexbench.contract import ContractError
from duplexbench.contract.http import PATH_POLL
from duplexbench.contract.longpoll import decode_batch

from .base import OnError, OnMessage
from .http11 import ConnectionLost, HTTP11Connection, HttpSink, Response
from .httpsub import HttpSubscriber
from .publisher import HttpPublisher
from .reader import readloop  # None where clients/readloop.c was not built


__all__ = ["LongPollSubscriber"]


class LongPollSubscriber(HttpSubscriber):
    transport = "longpoll"

    def __init__(
        self,
        base_url: str,
        topic: str,
        on_message: OnMessage,
        *,
        cursor: int = 0,
        role: str = "sub",
        on_error: OnError | None = None,
        keepalive: bool = True,
        max_batch: int = 1000,
        poll_timeout_s: float = 30.0,
        publisher: HttpPublisher | None = None,
        **fast,
    ) -> None:
        super().__init__(base_url, topic, on_message, cursor=cursor, role=role,
                         on_error=on_error, publisher=publisher, **fast)
        self.keepalive = keepalive
        # The fixed part of every poll target, so a poll only formats the cursor.
        self._target_head = b"%s?topic=%s&timeout=%s&max=%d&cursor=" % (
            PATH_POLL.encode(), topic.encode(), _seconds(poll_timeout_s), max_batch,
        )
        #: The fast path (see _Repoll): the request around the cursor's seq, as
        #: HTTP11Connection.send writes it (request line, Host, blank line).
        self._fast = self.on_raw is not None and keepalive
        self._head = b""  # b"GET <target>cursor=<epoch>-", once the epoch is known
        self._tail = b" HTTP/1.1\r\nHost: %s\r\n\r\n" % self.endpoint.authority.encode()
        self._fast_conn: HTTP11Connection | None = None  # the connection _Repoll parses

    # Public methods

    async def start(self) -> None:
        """Send the first poll; return once it is on the wire (the subscription
        exists from then on: the server answers from ``cursor``)."""
        if self._task is not None:
            raise RuntimeError("start() called twice")
        first = await self._send_poll()
        self._task = asyncio.create_task(self._run(first), name=f"longpoll {self.topic}")

    # The poll loop

    async def _send_poll(self) -> "asyncio.Future":
        conn = self._conn
        if conn is None or not conn.reusable:
            conn = self._conn = await self._open()
        return conn.send(b"GET", self._target_head + self.cursor_text().encode(),
                         close=not self.keepalive)

    async def _run(self, pending: "asyncio.Future") -> None:
        while not self._closing:
            try:
                response = await pending
            except ConnectionLost as exc:
                if self._closing:
                    return
                self._disconnected()
                self.stats.reconnects += 1
                self._error(f"poll failed, resuming from cursor {self.cursor}: {exc}")
                await self._backoff.wait()
                pending = await self._next_poll()
                continue
            status = response.status
            if status != 410:
                self._learn_epoch(response.headers)
            if status == 200:
                self._deliver(response.body, response.recv_ns)
                self._backoff.reset()
            elif status == 204:
                pass  # held until the timeout with nothing new: poll again
            elif status == 410:
                self._skip_expired(response.body)
            else:
                self._error(f"poll answered {status}: {response.body[:200]!r}")
                await self._backoff.wait()
            self._go_fast()
            pending = await self._next_poll()

    def _go_fast(self) -> None:
        """Between two polls: let _Repoll answer on this connection from now on."""
        conn = self._conn
        if not self._fast or not self.epoch or conn is None or not conn.reusable:
            return
        self._head = b"GET %s%s-" % (self._target_head, self.epoch.encode())
        if conn is not self._fast_conn:
            repoll = _Repoll(self, conn)
            conn.take_parser(repoll)
            self._fast_conn = conn
            if self.reader is not None and self.ssl_context is None:
                # Answers are read by the FastReader and parsed at once (immediate): the
                # next poll leaves from that same call, no event-loop callback per poll
                # (none in Python at all for the common answer: PollSink).
                self.reader.take(PollSink(self, conn, repoll))

    async def _next_poll(self) -> "asyncio.Future":
        """The next poll, reopening the connection (with backoff) until it goes out."""
        while True:
            try:
                return await self._send_poll()
            except ConnectionLost as exc:
                if self._closing:
                    raise asyncio.CancelledError from None
                self._error(f"cannot poll: {exc}")
                await self._backoff.wait()

    def _deliver(self, body: bytes, recv_ns: int) -> None:
        if self.on_raw is not None:  # the fast path: raw now, accounted later
            # The next poll needs the last seq now: only that one is parsed.
            last = body.rfind(b'{"seq":')
            if last >= 0:
                self.cursor = int(body[last + 7:body.index(b",", last)])
                self.on_raw.feed(body, recv_ns)
            return
        try:
            envelopes = decode_batch(body)
        except ContractError as exc:
            self._error(f"bad poll body: {exc}")
            return
        on_message = self.on_message
        for env in envelopes:
            on_message(env, recv_ns)
        if envelopes:
            self.cursor = envelopes[-1].seq

    def _skip_expired(self, body: bytes) -> None:
        """410: our cursor fell out of retention; resume at the oldest kept
        message (the gap shows up as loss in the accounting)."""
        try:
            obj = json.loads(body)
            oldest = int(obj["oldest_seq"])
        except (ValueError, KeyError, TypeError):
            self._error(f"410 without oldest_seq: {body[:200]!r}")
            return
        if obj.get("event") == "reset":  # contract v2: another server instance answered
            try:
                epoch, k = obj["epoch"], int(str(obj["cursor"]).rsplit("-", 1)[1])
            except (KeyError, ValueError, IndexError):
                self._error(f"bad reset object: {body[:200]!r}")
                return
            self._error(f"server restarted (epoch {self.epoch} -> {epoch}); continuing at {k}, "
                        "messages not received count as lost")
            self.epoch, self.cursor = epoch, k
            if self.on_raw is not None:
                self.on_raw.reset(k)
            return
        self._error(f"cursor {self.cursor} expired; resuming at {oldest}")
        self.cursor = max(self.cursor, oldest - 1)


class _Repoll:
    """httptools callbacks of a keep-alive poll connection whose answers go to a RawLog.

    A 200 with envelopes or a 204: the body goes to the RawLog (its last seq is the
    new cursor) and the next poll is written at once, still inside the parser's
    callback. Anything else (another status, no keep-alive, the subscriber closing)
    goes to the poll task as usual: :meth:`HTTP11Connection.complete` hands it to the
    waiter of the poll in flight, which the task has awaited all along.
    """

    __slots__ = ("sub", "conn", "chunks", "on_body", "poll_state")

    def __init__(self, sub: LongPollSubscriber, conn: HTTP11Connection) -> None:
        self.sub, self.conn = sub, conn
        self.chunks: list[bytes] = []
        self.on_body = self.chunks.append  # a C call per body piece, no Python frame
        #: The PollSink's readloop.PollState while the FastReader's C loop may answer.
        self.poll_state = None

    def on_message_complete(self) -> None:
        conn, chunks, sub = self.conn, self.chunks, self.sub
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        parser = conn.parser
        status, keep = parser.get_status_code(), parser.should_keep_alive()
        if keep and not sub._closing and not conn.closed:
            if status == 200:
                last = body.rfind(b'{"seq":')
                if last >= 0:
                    seq = int(body[last + 7:body.index(b",", last)])
                    sub.cursor = seq
                    sub.on_raw.feed(body, conn.recv_ns)
                    if sub._backoff.attempt:
                        sub._backoff.reset()
                    conn.write_request(b"%s%d%s" % (sub._head, seq, sub._tail))
                    self._at_boundary()
                    return
            elif status == 204:
                conn.write_request(b"%s%d%s" % (sub._head, sub.cursor, sub._tail))
                self._at_boundary()
                return
        conn.complete(Response(status, {}, body, keep, conn.recv_ns))

    def _at_boundary(self) -> None:
        """A response parsed whole, the next poll out: the C loop may answer the next."""
        state = self.poll_state
        if state is not None:
            state.on, state.head = True, self.sub._head


class PollSink(HttpSink):
    """A keep-alive long poll read by the FastReader, answered in C when it can be.

    The common answer (one whole ``200`` with a Content-Length and envelopes in one
    read, kept alive) is answered by clients/readloop.c as :class:`_Repoll` answers it:
    the next poll written at once, the body and its receive time kept, the counts added
    up, none of it in Python. Anything else goes to httptools and _Repoll as before
    (:meth:`read_now`), which allows the C path again once a response ends whole.
    What C kept is settled into the RawLog, the connection's stats and the cursor by
    :meth:`drain` (the RawLog's flush, the reader's counts before a snapshot, a
    hand-back). Without the compiled loop (``poll_state`` None) every read is
    :meth:`read_now`'s, as before.
    """

    def __init__(self, sub: LongPollSubscriber, conn: HTTP11Connection, repoll: _Repoll) -> None:
        super().__init__(conn, sub.on_raw, immediate=True, limit=sub.on_raw.limit)
        self.sub = sub
        self.answered = 0  # polls answered in C, settled so far
        self.replay_kept = sub.on_raw.feed  # what C kept is a body, for the RawLog
        if readloop is not None:  # taken between two responses (_go_fast): C may answer next
            # The bodies C answers are kept in C (clients/readstore.c) until the RawLog's flush.
            self.store = readloop.ReadStore(self.limit)
            self.poll_state = readloop.PollState(sub._head, sub._tail, conn.transport, self.store)
            repoll.poll_state = self.poll_state

    def read_now(self, data: bytes, recv_ns: int) -> None:
        """A read the C loop left (or the Python loop's): httptools parses it, after what
        C answered before it is settled (the cursor is then current)."""
        if self.poll_state is not None:
            self.poll_state.on = False  # until _Repoll sees a response end whole
            self.drain()
        self.conn.replay(data, recv_ns)

    def settle(self) -> None:
        """The counts and the cursor of the polls C answered, into the connection's stats
        and the subscriber (the bodies stay for the RawLog's flush)."""
        state = self.poll_state
        if state is not None and state.requests:
            stats = self.conn.stats
            stats.bytes_down += state.bytes_down
            stats.bytes_up += state.bytes_up
            stats.http_requests += state.requests
            self.answered += state.requests
            state.bytes_down = state.bytes_up = state.requests = 0
            self.sub.cursor = state.cursor
            if self.sub._backoff.attempt:
                self.sub._backoff.reset()

    def drain(self) -> None:
        """Settle, then the kept bodies into the RawLog, in order (``replay_kept``)."""
        self.settle()
        super().drain()

    def attention(self, new: bytes) -> bool:
        return False  # the bodies kept wait for the RawLog's flush


def _seconds(value: float) -> bytes:
    return (b"%d" % value) if value == int(value) else (b"%g" % value)
