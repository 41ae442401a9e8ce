"""Delivery accounting: duplicates, reordering, warm-up, loss vs failed publishes."""

from __future__ import annotations

import numpy as np

from clients.accounting import Samples, SubscriberLog, tally
from duplexbench.contract import Envelope, make_payload


def deliver(log, seq, index, topic="t-0"):
    log.on_message(Envelope(seq, topic, 1000 + index, make_payload(index, 16)), 5000 + index)


def test_in_order_duplicate_reordered_and_warmup():
    samples = Samples()
    log = SubscriberLog(0, 0, samples, first=2, end=10)
    for seq, index in [(1, 0), (2, 1), (3, 2), (5, 4), (4, 3), (4, 3), (6, 5), (1, 0)]:
        deliver(log, seq, index)
    assert log.reordered == 1  # seq 4 after 5
    assert log.duplicated == 1  # the second 4 (the warm-up duplicate of 1 is not counted)
    assert list(samples.seq) == [3, 5, 4, 6]  # measured, first deliveries only
    assert list(samples.index) == [2, 4, 3, 5]
    assert list(samples.sent_ns) == [1002, 1004, 1003, 1005]
    assert samples.delivered == 4 and not log.gaps


def test_foreign_payloads_are_not_samples():
    samples = Samples()
    log = SubscriberLog(0, 0, samples, first=0, end=10)
    log.on_message(Envelope(1, "t", 1, "hello"), 2)
    assert log.foreign == 1 and len(samples) == 0 and log.highest == 1


def test_tally_counts_loss_but_not_failed_publishes():
    samples = Samples()
    # Two topics; message i goes to topic i % 2; subscribers 0, 1 on topic 0, 2 on topic 1.
    topic_of = np.arange(8) % 2
    ok = np.ones(8, dtype=bool)
    ok[6] = False  # this POST failed: not sent, so nobody expects it
    logs = [SubscriberLog(s, k, samples, first=2, end=8) for s, k in enumerate([0, 0, 1])]
    seq = {0: 0, 1: 0}
    for i in range(8):
        if not ok[i]:
            continue
        k = int(topic_of[i])
        seq[k] += 1
        for log in logs:
            if log.topic_k == k and not (log.sid == 1 and i == 4):  # subscriber 1 misses 4
                deliver(log, seq[k], i)
    totals = tally(logs, samples, topic_of, ok, first=2, end=8)
    # measured ok: topic 0 gets 2, 4 (6 failed) -> 2 subs x 2; topic 1 gets 3, 5, 7 -> 1 x 3
    assert totals.expected == 7
    assert totals.delivered == 6 and totals.lost == 1
    assert totals.duplicated == 0 and totals.reordered == 0


def test_tally_with_more_topics_than_messages():
    """Echo with more clients than messages: topics no message reached still count
    (expected 0 for their subscribers), instead of an index error."""
    samples = Samples()
    logs = [SubscriberLog(s, s, samples, first=0, end=2) for s in range(5)]
    deliver(logs[0], 1, 0, topic="t-0")
    totals = tally(logs, samples, np.array([0, 1]), np.array([True, True]), 0, 2)
    assert totals.expected == 2 and totals.delivered == 1 and totals.lost == 1


def _env(seq, index, topic="t-0"):
    from duplexbench.contract import encode_envelope
    return encode_envelope(seq, topic, 1000 + index, make_payload(index, 16))


def test_rawlog_stream_events_split_across_reads_count_once_at_the_completing_read():
    from clients.accounting import RawLog
    samples = Samples()
    raw = RawLog(SubscriberLog(0, 0, samples, first=0, end=10), delim=b"\n\n")
    raw.cut()
    one, two = b"data: " + _env(1, 0) + b"\n\n", b"data: " + _env(2, 1) + b"\n\n"
    raw.feed(b"retry: 1000\nid: e-0\n\n" + one[:20], 100)  # preamble, then half an event
    raw.feed(one[20:] + two[:-1], 200)  # the rest of 1, all of 2 but its last newline
    raw.feed(b"\n", 300)
    assert raw.highest() == 2
    assert list(samples.recv_ns) == [200, 300] and list(samples.seq) == [1, 2]


def test_rawlog_reset_restarts_seqs_and_recovery_is_timed():
    from clients.accounting import RawLog
    samples = Samples()
    log = SubscriberLog(0, 0, samples, first=0, end=10)
    raw = RawLog(log)
    raw.feed(_env(1, 0), 100)
    raw.feed(_env(2, 1), 200)
    raw.disconnected(250)
    raw.reset(0)  # the server restarted: seqs start again after 0
    raw.feed(_env(1, 3), 400)  # index 2 was never received: lost, not a duplicate
    raw.flush()
    assert log.duplicated == 0 and log.reordered == 0 and raw.resets == 1
    assert list(samples.index) == [0, 1, 3]
    assert raw.recovery_ns_max == 150 and raw.down_since == 0
    totals = tally([log], samples, np.zeros(4, dtype=np.int64), np.ones(4, dtype=bool), 0, 4)
    assert totals.delivered == 3 and totals.lost == 1
