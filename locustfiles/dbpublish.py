"""How the Locust users publish: topic names, the keep-alive POST, the schedule, records.

Split from the locustfile (which keeps the User classes): both the publisher
user and the per-client publishers of the echo and chat patterns use these, so
they name topics, send on schedule (open loop: intended send times fixed in
advance, as the native engine does) and record each publish the same way.
"""

from __future__ import annotations

import json
import random

from duplexbench.contract.http import PATH_PUBLISH

try:  # Locust puts the locustfile's folder on sys.path
    from dbrun import RUN, opt as _opt, phase_bounds as _phase_bounds
    from dbwire import ClientFailure, Conn as _Conn, Wire as _Wire
except ImportError:  # imported as a package module
    from locustfiles.dbrun import RUN, opt as _opt, phase_bounds as _phase_bounds
    from locustfiles.dbwire import ClientFailure, Conn as _Conn, Wire as _Wire

__all__ = ["Poster", "past_measure_end", "pub_url", "record_publish", "schedule", "topic_name"]


def topic_name(environment, k: int) -> str:
    """``{prefix}-{k}`` as the native loadgen names topics; interactive runs with one
    topic use the name given, so a person can watch it with curl."""
    prefix = _opt(environment, "topic")
    if _opt(environment, "clients") <= 0 and _opt(environment, "topics") <= 1 \
            and _opt(environment, "pattern") == "fanout":
        return prefix
    return f"{prefix}-{k}"


def pub_url(environment) -> str:
    return _opt(environment, "pub-host") or environment.host


class Poster:
    """Keep-alive ``POST /publish``; reconnects once when the server closed the connection."""

    def __init__(self, url: str, wire: _Wire) -> None:
        self.url, self.wire = url, wire
        self.conn: _Conn | None = None

    def publish(self, topic: str, data: str, ts: int) -> int:
        for attempt in (1, 2):
            if self.conn is None or self.conn.closed:
                self.conn = _Conn(self.url, self.wire, 10.0)
            try:
                response = self.conn.request(
                    "POST", f"{PATH_PUBLISH}?topic={topic}&ts={ts}",
                    {"Content-Type": "text/plain; charset=utf-8"}, data.encode())
                body = response.read()
            except OSError:
                self.conn.close()
                if attempt == 2:
                    raise
                continue
            if response.should_close():
                self.conn.close()
            if response.status_code != 200:
                raise ClientFailure(f"publish answered {response.status_code}: {body[:200]!r}")
            return int(json.loads(body)["seq"])
        raise AssertionError("unreachable")


def schedule(environment, first_ns: int, rate: float, salt: int):
    """Intended send times (open loop): uniform spacing or Poisson arrivals."""
    period = 1e9 / rate
    if _opt(environment, "arrival") == "poisson":
        rng = random.Random(_opt(environment, "seed") * 1_000_003 + salt)
        t = float(first_ns)
        while True:
            yield int(t)
            t += rng.expovariate(1.0) * period
    k = 0
    while True:
        yield first_ns + int(k * period)
        k += 1


def past_measure_end(environment, intended_ns: int) -> bool:
    if _opt(environment, "duration") <= 0:
        return False
    return intended_ns >= _phase_bounds(environment, RUN.t0_ns)[1]


def record_publish(index: int, topic: str, seq: int, intended: int, sent: int) -> None:
    if RUN.recorder is not None:
        RUN.recorder.add("publishes", f"{index},{topic},{seq},{intended},{sent}\n")
