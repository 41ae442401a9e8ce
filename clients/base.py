"""What every subscriber client shares: wire counters, the callback type, errors.

The four transports (long polling, SSE, NDJSON, WebSocket) are measured side by
side, so they must look the same to the load generator: the same life cycle
(``start`` / ``publish`` / ``close``), the same ``on_message(envelope, recv_ns)``
callback and the same :class:`WireStats`, counted at the socket (every byte
written to or read from the transport, HTTP headers, chunk / SSE / WebSocket
framing and handshakes included), never computed from formulas.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # the type of what on_message receives; nothing of it runs here
    from duplexbench.contract.envelope import Envelope


__all__ = [
    "ClientError",
    "Endpoint",
    "OnError",
    "OnMessage",
    "OnRaw",
    "Subscriber",
    "WireSnapshot",
    "WireStats",
    "Backoff",
    "now_ns",
    "parse_base_url",
]

#: ``on_message(envelope, recv_ns)``: called once per delivered envelope, with
#: ``time.monotonic_ns()`` taken when the bytes carrying it were read.
OnMessage = Callable[["Envelope", int], None]
#: ``on_error(message)``: a client reports a problem it recovered from.
OnError = Callable[[str], None]
#: The load generator's fast path: an ``accounting.RawLog`` (``feed(data, recv_ns)``
#: per read, ``highest()`` for a resumption, ``cut()`` at a new stream).
OnRaw = object


class ClientError(RuntimeError):
    """A client could not do what it was asked; the message says what and where."""


class WireStats:
    """Mutable counters, updated on the hot path (so a plain slotted class, not a
    dataclass); :meth:`snapshot` gives the frozen view that is reported."""

    __slots__ = ("bytes_up", "bytes_down", "http_requests", "connections", "reconnects", "errors")

    def __init__(self) -> None:
        self.bytes_up = 0  # bytes written to the transport (requests, WS frames, handshakes)
        self.bytes_down = 0  # bytes read from the transport (responses, framing, heartbeats)
        self.http_requests = 0  # HTTP requests sent (the WS upgrade counts as one)
        self.connections = 0  # TCP connections opened
        self.reconnects = 0  # resumptions after an unexpected loss of the subscription
        self.errors = 0  # problems the client recovered from (or gave up on)

    def snapshot(self) -> "WireSnapshot":
        return WireSnapshot(
            self.bytes_up, self.bytes_down, self.http_requests,
            self.connections, self.reconnects, self.errors,
        )

    def __repr__(self) -> str:
        return f"WireStats({self.snapshot()})"


@dataclass(frozen=True, slots=True)
class WireSnapshot:
    """Counters at one instant; subtract two to get a window, add to aggregate."""

    bytes_up: int = 0
    bytes_down: int = 0
    http_requests: int = 0
    connections: int = 0
    reconnects: int = 0
    errors: int = 0

    def __add__(self, other: "WireSnapshot") -> "WireSnapshot":
        return WireSnapshot(*(a + b for a, b in zip(self._values(), other._values())))

    def __sub__(self, other: "WireSnapshot") -> "WireSnapshot":
        return WireSnapshot(*(a - b for a, b in zip(self._values(), other._values())))

    def _values(self) -> tuple[int, ...]:
        return (self.bytes_up, self.bytes_down, self.http_requests,
                self.connections, self.reconnects, self.errors)

    def as_dict(self) -> dict[str, int]:
        return dict(zip(("bytes_up", "bytes_down", "http_requests",
                         "connections", "reconnects", "errors"), self._values()))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a client connects: parsed once, used for every (re)connection."""

    host: str
    port: int
    #: The Host header value (host:port), prepared once.
    authority: str


def parse_base_url(base_url: str) -> Endpoint:
    """``http://127.0.0.1:8080`` (or https://) -> Endpoint (ws:// and wss:// are derived)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "ws", "https", "wss") or not parts.hostname:
        raise ClientError(f"bad base URL {base_url!r}: expected http://HOST:PORT")
    if parts.path not in ("", "/"):
        raise ClientError(f"bad base URL {base_url!r}: give no path, clients add their own")
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    return Endpoint(parts.hostname, port, f"{parts.hostname}:{port}")


class Backoff:
    """Reconnect delays: exponential back-off with full jitter (RFC 6455 7.2.3:
    "randomized ... so that clients do not reconnect at the same time").

    The n-th consecutive retry waits uniform(0, min(cap, first x 2^n)) s, so
    after a server restart thousands of subscribers spread their reconnects
    instead of arriving in one burst; :meth:`reset` after a success.
    """

    __slots__ = ("attempt", "first", "cap")

    def __init__(self, first: float = 0.02, cap: float = 1.0) -> None:
        self.first, self.cap = first, cap
        self.attempt = 0

    def next_delay(self) -> float:
        delay = random.uniform(0.0, min(self.cap, self.first * (1 << min(self.attempt, 30))))
        self.attempt += 1
        return delay

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.attempt = 0


class Subscriber:
    """The interface every transport implements (see docs/DESIGN.md "Clients").

    Subclasses receive in a background task started by :meth:`start` and
    resume from ``self.cursor`` (the last seq delivered) after a lost connection.
    """

    #: Which :class:`duplexbench.contract.Transport` this client speaks.
    transport: str = ""
    #: Whether :meth:`publish` sends over this client's own connection.
    publishes_on_transport: bool = False

    def __init__(
        self,
        base_url: str,
        topic: str,
        on_message: OnMessage,
        *,
        cursor: int = 0,
        role: str = "sub",
        on_error: OnError | None = None,
        on_raw: OnRaw | None = None,
        tcp=None,
        local_addr: tuple[str, int] | None = None,
        backoff: tuple[float, float] | None = None,
        ssl_context=None,
    ) -> None:
        self.endpoint = parse_base_url(base_url)
        #: When set, envelopes skip ``on_message`` and go here in bulk (see OnRaw).
        self.on_raw = on_raw
        #: A clients.tcpinfo.TcpTally that every connection of this client joins.
        self.tcp = tcp
        #: Source address to bind (several 127.0.0.x beat the ~28k ports per address).
        self.local_addr = local_addr
        #: (first, cap) seconds of the reconnect back-off (Backoff); None: the default.
        self.backoff_s = backoff
        #: TLS: an ssl.SSLContext for https / wss (None: plain TCP).
        self.ssl_context = ssl_context
        #: The server instance's epoch (Duplexbench-Epoch header); cursors then read E-N.
        self.epoch: str | None = None
        self.base_url = base_url.rstrip("/")
        self.topic = topic
        self.on_message = on_message
        self.cursor = cursor  # the last seq this client holds: where a resume starts
        self.role = role
        self.on_error = on_error
        self.stats = WireStats()
        self._closing = False
        self._task: asyncio.Task | None = None

    async def start(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def publish(self, data: str, ts: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def cursor_text(self) -> str:
        """The resume position: ``E-N`` once the epoch is known, else legacy ``N``."""
        return f"{self.epoch}-{self.cursor}" if self.epoch else str(self.cursor)

    def _new_backoff(self) -> "Backoff":
        return Backoff(*self.backoff_s) if self.backoff_s else Backoff()

    async def _reconnect(self) -> None:
        """Connect again after the back-off (exponential, full jitter: RFC 6455 7.2.3)
        until it works or the client closes; each failed attempt is counted as an error."""
        while not self._closing:
            await self._backoff.wait()
            try:
                await self._connect()
            except ClientError as exc:  # ConnectionLost included
                self._error(f"resume failed: {exc}")
            else:
                self._backoff.reset()
                return

    def _disconnected(self) -> None:
        """A lost subscription: the RawLog times the recovery from now."""
        raw = self.on_raw
        if raw is not None:
            raw.disconnected(time.monotonic_ns())

    def _error(self, message: str) -> None:
        self.stats.errors += 1
        if self.on_error is not None:
            self.on_error(f"{self.transport} {self.topic}: {message}")


def now_ns() -> int:
    """The one clock of a run (CLOCK_MONOTONIC, shared by every process on a host)."""
    return time.monotonic_ns()
