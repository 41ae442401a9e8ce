"""A connection read by the FastReader (clients/reader.py): its reads until they are parsed.

Apart from the loop so that the transports' connections (clients/http11.py, clients/fastws.py)
depend on what they provide to the reader, not on the reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reader import FastReader

__all__ = ["DEFAULT_LIMIT", "ListStore", "Sink"]

#: Reads a sink keeps before parsing them (memory bound; the RawLog's own limit
#: applies after that, clients/point.py sets both).
DEFAULT_LIMIT = 4096


class ListStore:
    """A connection's reads in two lists: clients/readstore.c's ReadStore in Python, where
    the C loop was not built (its sinks get a ReadStore when taken, clients/reader.py; a
    long poll's when it is made, clients/longpoll.py)."""

    __slots__ = ("chunks", "times", "limit")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.times: list[int] = []
        self.limit = limit

    def __len__(self) -> int:
        return len(self.chunks)

    def append(self, data: bytes, recv_ns: int) -> bool:
        """Keep one read; True when the store holds its limit."""
        self.chunks.append(data)
        self.times.append(recv_ns)
        return len(self.chunks) >= self.limit

    def take(self) -> tuple[list[bytes], list[int]]:
        """Every read kept, in order; the store is then empty."""
        chunks, times = self.chunks, self.times
        self.chunks, self.times = [], []
        return chunks, times

    def joined(self, start: int = 0) -> bytes:
        """Reads ``start``.. back to back (they stay kept)."""
        return b"".join(self.chunks[start:])


class Sink:
    """One taken connection: its reads (bytes, receive time) until they are parsed.

    Subclasses (clients/http11.py, clients/fastws.py) say how a read is parsed
    (:meth:`replay`), what in new reads cannot wait (:meth:`attention`), and how
    the transport stops and resumes reading.
    """

    #: Parse every read at once (a long poll answers and re-polls), not later.
    immediate = False
    #: A long poll's state for clients/readloop.c's answer in C (clients/longpoll.py
    #: PollSink); an immediate sink that has one is read by :meth:`read_now`.
    poll_state = None
    #: What parses a kept read at drain(), when it is not :meth:`replay` (a long poll's
    #: sink keeps bodies C answered, for its RawLog).
    replay_kept = None

    def __init__(self, fd: int, raw=None, limit: int = DEFAULT_LIMIT) -> None:
        self.fd = fd
        #: The subscriber's RawLog (clients.accounting): while taken, its flush() parses
        #: this sink's pending reads first, so the log is complete whenever it is read.
        self.raw = raw
        #: The reads not parsed yet, with their receive times: a ListStore, or the C loop's
        #: ReadStore (clients/readstore.c) from when the FastReader takes the sink.
        self.store = ListStore(limit)
        self.limit = limit
        #: The store's first ``checked`` reads were looked at by attention() already.
        self.checked = 0
        self.reader: FastReader | None = None
        self._draining = False

    # What subclasses provide

    def replay(self, data: bytes, recv_ns: int) -> None:  # pragma: no cover - interface
        """Parse one read, received at ``recv_ns``, as the transport would have."""
        raise NotImplementedError

    def settle(self) -> None:
        """Bring counts kept aside up to date (before a counter snapshot); most keep none."""

    def attention(self, new: bytes) -> bool:
        """Whether the reads not looked at yet (``new``: their bytes back to back) need
        parsing now."""
        return False

    def pause(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def resume(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    # The life cycle

    def drain(self) -> None:
        """Parse every pending read, in order. Re-entrant: a parse that ends up here
        again (the RawLog flushing at its limit) finds nothing pending. Reads that
        attention() has not seen are shown to it first: it sees every read once."""
        store = self.store
        if self._draining or not store:
            return
        self._draining = True
        try:
            while store:
                if self.checked < len(store):
                    self.attention(store.joined(self.checked))
                chunks, times = store.take()
                self.checked = 0
                replay = self.replay_kept or self.replay
                for data, t in zip(chunks, times):
                    replay(data, t)
        finally:
            self._draining = False

    @property
    def pending(self) -> int:
        return len(self.store)

    @property
    def taken(self) -> bool:
        return self.reader is not None

    def release(self) -> None:
        """Leave the reader (before the socket closes): parse what is pending, and
        never read this file descriptor again. The transport does not read either:
        call :meth:`resume` for that (:meth:`hand_back`)."""
        reader = self.reader
        if reader is not None:
            self.reader = None
            reader.forget(self)
        self.drain()
        if self.raw is not None and self.raw.source is self:
            self.raw.source = None

    def hand_back(self) -> None:
        """The socket goes back to the event loop: the transport reads again (and sees
        an end or an error itself: the subscriber's reconnecting path runs as before)."""
        if self.reader is None:
            return
        self.release()
        self.resume()
