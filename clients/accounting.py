"""Per-subscriber delivery accounting by sequence number, on the hot path.

A benchmark that reports latency but not loss can look fast by dropping
messages, so every delivery is checked against the topic's ``seq``:

- duplicated: a seq this subscriber already holds;
- reordered: a seq below the highest seen so far that was still missing;
- delivered / lost: distinct measured messages received / expected but
  never received (computed at the end from the samples, see :func:`tally`).

Seqs on a fresh topic run 1, 2, 3…, so instead of a set of everything seen
a subscriber keeps the highest seq and the (normally empty) set of gaps
below it: O(1) work and no growing state per in-order message.

Only messages of the measurement window (publish index in
``[first, end)``) are counted and sampled; warm-up ones only move the
highest seq.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass

import numpy as np

from duplexbench.contract.envelope import Envelope

__all__ = ["ENVELOPES", "DeliveryTotals", "RawLog", "Samples", "SubscriberLog", "tally"]

#: Every envelope in a chunk, in one C call: (seq, ts, publish index or b"").
#: The envelope's byte layout is fixed by the contract (compact, keys in order:
#: duplexbench/contract/envelope.py) and topics never contain quotes, so a
#: regular expression over the whole chunk replaces a JSON parse, a dataclass
#: and a callback per message: the receive path's per-message Python work is
#: a loop iteration with a few integer conversions and array appends.
#: The seq a reset object resumes from: its cursor "NEW-K".
RESET_SEQ = re.compile(rb'"cursor":"[a-z0-9]{1,16}-(\d+)"')
ENVELOPES = re.compile(rb'\{"seq":(\d+),"topic":"[^"]*","ts":(\d+),"data":"(?:(\d{1,12}):)?')


class Samples:
    """Column buffers shared by all subscribers of a point (one append per
    column per delivery: 8 bytes a value, not a tuple per row)."""

    __slots__ = ("subscriber", "seq", "index", "sent_ns", "recv_ns", "delivered")

    def __init__(self) -> None:
        self.subscriber = array("q")
        self.seq = array("q")
        self.index = array("q")
        self.sent_ns = array("q")
        self.recv_ns = array("q")
        #: First deliveries of measured messages so far (progress, early drain end).
        self.delivered = 0

    def __len__(self) -> int:
        return len(self.seq)


class SubscriberLog:
    """One subscriber's accounting; ``log.on_message`` is its client callback."""

    __slots__ = ("sid", "topic_k", "highest", "gaps", "duplicated", "reordered",
                 "foreign", "_samples", "_first", "_end")

    def __init__(self, sid: int, topic_k: int, samples: Samples, first: int, end: int,
                 cursor: int = 0) -> None:
        self.sid = sid  # subscriber number within the point
        self.topic_k = topic_k  # which topic it subscribes to
        self.highest = cursor  # highest seq held
        self.gaps: set[int] = set()  # seqs below ``highest`` not yet received
        self.duplicated = 0
        self.reordered = 0
        self.foreign = 0  # payloads without a publish index (not ours)
        self._samples = samples
        self._first = first
        self._end = end

    def set_window(self, first: int, end: int) -> None:
        self._first, self._end = first, end

    def on_raw(self, matches: list[tuple[bytes, bytes, bytes]], recv_ns: int) -> int:
        """Account every envelope of one read (``ENVELOPES.findall``); returns the
        highest seq held (the subscriber's resume cursor)."""
        first, end = self._first, self._end
        s = self._samples
        highest = self.highest
        for seq_b, ts_b, index_b in matches:
            seq = int(seq_b)
            if seq > highest:
                if seq > highest + 1:
                    self.gaps.update(range(highest + 1, seq))
                highest = seq
            elif seq in self.gaps:
                self.gaps.discard(seq)
                if index_b and first <= int(index_b) < end:
                    self.reordered += 1
            else:
                if index_b and first <= int(index_b) < end:
                    self.duplicated += 1
                continue
            if not index_b:
                self.foreign += 1
                continue
            index = int(index_b)
            if first <= index < end:
                s.subscriber.append(self.sid)
                s.seq.append(seq)
                s.index.append(index)
                s.sent_ns.append(int(ts_b))
                s.recv_ns.append(recv_ns)
                s.delivered += 1
        self.highest = highest
        return highest

    def on_message(self, env: Envelope, recv_ns: int) -> None:
        seq = env.seq
        data = env.data
        colon = data.find(":")
        try:
            index = int(data[:colon]) if colon > 0 else -1
        except ValueError:
            index = -1
        measured = self._first <= index < self._end
        highest = self.highest
        if seq > highest:
            if seq > highest + 1:
                self.gaps.update(range(highest + 1, seq))
            self.highest = seq
        elif seq in self.gaps:
            self.gaps.discard(seq)
            if measured:
                self.reordered += 1
        else:
            if measured:
                self.duplicated += 1
            return
        if index < 0:
            self.foreign += 1
            return
        if measured:
            s = self._samples
            s.subscriber.append(self.sid)
            s.seq.append(seq)
            s.index.append(index)
            s.sent_ns.append(env.ts)
            s.recv_ns.append(recv_ns)
            s.delivered += 1


class RawLog:
    """One subscriber's reads, kept raw during the window and accounted later.

    Why: per read, the receive path then only appends the bytes and their
    receive time (two appends), so the load generator's CPU inside the
    measurement window is the kernel's and the client library's, not
    bookkeeping's. :meth:`flush` runs the reads through
    :meth:`SubscriberLog.on_raw` in arrival order (same results as accounting
    each read at once: the receive time is the read's). It runs when asked
    for (warm-up settle, drain, a reconnect needing the cursor, the end) or
    when ``limit`` reads are pending, which bounds memory: the load generator
    sets ``limit`` from a budget shared by all its subscribers.

    ``delim``: None when every read holds whole envelopes (a WebSocket frame,
    a poll body); else the end of an event on a stream (SSE ``\\n\\n``,
    NDJSON ``\\n``): the tail after the last one waits for the next read, so
    an event split across reads is counted once, at the read completing it.
    """

    __slots__ = ("log", "delim", "chunks", "times", "pending", "limit", "down_since",
                 "disconnects", "recovery_ns_max", "resets", "source")

    def __init__(self, log: SubscriberLog, delim: bytes | None = None, limit: int = 4096) -> None:
        self.log = log
        self.delim = delim
        self.chunks: list[bytes] = []
        self.times = array("q")
        self.pending = b""
        self.limit = limit
        self.down_since = 0  # when the subscription was lost (0: it is up)
        self.disconnects = 0
        self.recovery_ns_max = 0  # longest time from a loss to the next delivery
        self.resets = 0  # epoch resets seen (the server restarted)
        #: The connection's reads not parsed yet (a clients.reader.Sink, while the
        #: subscriber's socket is read by the FastReader): flush() parses them first.
        self.source = None

    def disconnected(self, now_ns: int) -> None:
        self.disconnects += 1
        if not self.down_since:
            self.down_since = now_ns

    def reset(self, seq: int) -> None:
        """A reset object (contract v2: the server restarted): seqs restart after
        ``seq``; what was never received stays expected, so it counts as lost."""
        self.chunks.append(b"")
        self.times.append(-2 - seq)

    def feed(self, data: bytes, recv_ns: int) -> None:
        self.chunks.append(data)
        self.times.append(recv_ns)
        if len(self.chunks) >= self.limit:
            self.flush()

    def cut(self) -> None:
        """A new connection: a partial event of the old one is dropped."""
        self.chunks.append(b"")
        self.times.append(-1)

    def highest(self) -> int:
        """The highest seq held (flushes): where a resumption starts."""
        self.flush()
        return self.log.highest

    def flush(self) -> None:
        if self.source is not None:
            self.source.drain()
        chunks, times = self.chunks, self.times
        if not chunks:
            return
        self.chunks, self.times = [], array("q")
        findall, on_raw, delim = ENVELOPES.findall, self.log.on_raw, self.delim
        if self.down_since:
            self._recovered(times)
        if delim is None:
            for data, t in zip(chunks, times):
                if t >= 0:
                    matches = findall(data)
                    if matches:
                        on_raw(matches, t)
                elif t <= -2:
                    self._restart(-2 - t)
            return
        pending, step = self.pending, len(delim)
        for data, t in zip(chunks, times):
            if t < 0:
                pending = b""
                if t <= -2:
                    self._restart(-2 - t)
                continue
            if b'{"event":"reset"' in data:  # a stream's reset object (SSE / NDJSON)
                found = RESET_SEQ.search(data)
                if found:
                    self._restart(int(found.group(1)))
                pending = b""
            buf = pending + data if pending else data
            cut = buf.rfind(delim)
            if cut < 0:
                pending = buf
                continue
            pending = buf[cut + step:]
            matches = findall(buf, 0, cut)
            if matches:
                on_raw(matches, t)
        self.pending = pending

    def _recovered(self, times) -> None:
        for t in times:
            if t > self.down_since:
                self.recovery_ns_max = max(self.recovery_ns_max, t - self.down_since)
                self.down_since = 0
                return

    def _restart(self, seq: int) -> None:
        self.resets += 1
        log = self.log
        log.highest = seq
        log.gaps.clear()

    @property
    def unflushed(self) -> int:
        return len(self.chunks) + (self.source.pending if self.source is not None else 0)


@dataclass(frozen=True, slots=True)
class DeliveryTotals:
    expected: int
    delivered: int
    lost: int
    duplicated: int
    reordered: int
    #: lost_per_sub[j]: measured messages subscriber j (the j-th log) never received.
    lost_per_sub: np.ndarray | None = None


def tally(logs: list[SubscriberLog], samples: Samples, topic_of_index: np.ndarray,
          published_ok: np.ndarray, first: int, end: int) -> DeliveryTotals:
    """Expected, delivered and lost over the measurement window.

    ``topic_of_index[i]``: the topic message i went to; ``published_ok[i]``:
    whether its publish succeeded (a failed POST is an error, not a loss).
    Expected = successful measured publishes to a subscriber's topic, summed
    over subscribers; a delivery counts when it is one of those.
    """
    # Topics: every one a message went to or a subscriber listens on (echo with
    # more clients than messages has topics no message reached).
    n_topics = max(int(topic_of_index.max()) + 1 if len(topic_of_index) else 1,
                   max((log.topic_k for log in logs), default=0) + 1)
    measured = np.zeros(len(published_ok), dtype=bool)
    measured[first:end] = True
    ok = published_ok & measured
    per_topic = np.bincount(topic_of_index[ok], minlength=n_topics) if ok.any() else np.zeros(n_topics, np.int64)
    sub_topic = np.array([log.topic_k for log in logs], dtype=np.int64)
    expected_per_sub = per_topic[sub_topic] if len(logs) else np.zeros(0, np.int64)
    sub = np.frombuffer(samples.subscriber, dtype=np.int64)
    idx = np.frombuffer(samples.index, dtype=np.int64)
    if len(idx):
        inside = idx < len(ok)
        sub, idx = sub[inside], idx[inside]
        good = ok[idx] & (topic_of_index[idx] == sub_topic[sub])
        pairs = np.unique(sub[good] * max(1, len(ok)) + idx[good])
        delivered_per_sub = np.bincount(pairs // max(1, len(ok)), minlength=len(logs))
    else:
        delivered_per_sub = np.zeros(len(logs), np.int64)
    lost = np.maximum(expected_per_sub - delivered_per_sub, 0)
    return DeliveryTotals(
        expected=int(expected_per_sub.sum()),
        delivered=int(delivered_per_sub.sum()),
        lost=int(lost.sum()),
        duplicated=sum(log.duplicated for log in logs),
        reordered=sum(log.reordered for log in logs),
        lost_per_sub=lost,
    )
