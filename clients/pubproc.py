"""The publisher in a process of its own: ``python -m clients.pubproc SPEC.json OUT.npz``.

Why a process: sharing the subscribers' event loop made the publisher late.
Measured (docs/DESIGN.md "Clients"): uvloop (libuv) keeps its clock and its
timers in whole milliseconds, so ``asyncio.sleep(d)`` wakes at the next
millisecond boundary after the deadline (0-1 ms late, ~0.5 ms on average),
and every wake-up then waits behind the subscribers' reads queued in the
same loop iteration. The coordinated-omission correction rightly counts
that as latency, and wrongly blamed it on the transport.

Here nothing else runs: the loop is ``select()`` with a microsecond timeout
(timer slack set to 1 us with ``prctl``), waking for the next due message
or for a response, so a message leaves within microseconds of its intended
time, without spinning (a spinning publisher would bill its idle time to
the load generator's CPU). Open loop: up to ``publish_pool`` POSTs in
flight on keep-alive connections; a message finds a busy pool only when the
server is slow to answer, and then waits (its ``ts`` is stamped when
written), which is the server's doing.

Talks to its parent (clients.point) in JSON lines: it prints ``ready``,
reads ``start`` (the schedule's origin), sends the warm-up, prints
``warmup_done`` with the successful warm-up publishes per topic, reads
``measure`` (the pause to add), sends the measured messages, prints
``sent`` once every answer is in (or given up on), reads ``end`` and
writes OUT.npz (sent_ns, ok, seq per publish index) plus its TCP_INFO
window, prints ``done`` and exits. It dies with its parent (PDEATHSIG).
With ``http = "2"`` the POSTs are streams of one HTTP/2 connection (clients.h2pub).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

from .h2pub import H2Publisher
from .process import tune_process
from .publoop import ANSWER_WAIT_S, Publisher, Stopped, priority
from .spec import LoadSpec
from .tcpinfo import diff

__all__ = ["main"]


def _say(event: str, **fields) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def _read() -> dict:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit(3)  # the parent went away
    return json.loads(line)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m clients.pubproc SPEC.json OUT.npz", file=sys.stderr)
        return 2
    tune_process()
    spec = LoadSpec.from_file(args[0])
    if spec.http == "2":  # POSTs as streams of one HTTP/2 connection (clients.h2pub)
        pub: Publisher = H2Publisher(spec)
    else:
        pub = Publisher(spec)
    try:
        pub.connect()
    except OSError as exc:
        _say("failed", message=f"publisher cannot connect to {pub.endpoint.authority}: {exc}")
        return 1
    for signum in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(signum, pub.on_stop_signal)
    _say("ready", pid=os.getpid(), sched=priority())
    start_ns = int(_read()["start_ns"])
    first = pub.schedule.first_measured
    n = len(pub.schedule)
    tcp_start = pub.tcp.total()
    try:
        if first:
            pub.send_due(0, first, start_ns)
            pub.sleep_until(start_ns + pub.schedule.warmup_ns)
            pub.wait_answers(ANSWER_WAIT_S)
        topics = np.asarray(pub.topic_of[:first], dtype=np.int64)[pub.ok[:first]]
        _say("warmup_done", ok_per_topic=np.bincount(topics, minlength=len(pub.plan.topics)).tolist(),
             in_flight=pub.in_flight)
        pub.interruptible = True
        pause_ns = int(_read()["pause_ns"])
        pub.interruptible = False
        tcp_start = pub.tcp.total()
        pub.send_due(first, n, start_ns + pause_ns)
    except Stopped:
        pass
    pub.wait_answers(ANSWER_WAIT_S)
    np.savez(args[1], sent_ns=pub.sent_ns, ok=pub.ok, seq=pub.seq)
    _say("sent", sent=pub.sent, in_flight=pub.in_flight, errors=pub.error_count,
         error_messages=pub.errors)
    _read()  # "end": the drain is over
    _say("done", tcp=list(diff(pub.tcp.total(), tcp_start)), unreadable=pub.tcp.unreadable)
    for conn in pub.conns:
        if conn is not None:
            conn.sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
