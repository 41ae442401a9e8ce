"""LoadSpec: one load point, as the runner hands it to a load generator.

The runner (or the Locust engine, or a person) writes it to SPEC.json and
starts ``python -m clients.loadgen SPEC.json OUT_DIR``; the file is the whole
interface between them, so every field is validated here with an error that
names the field and what was expected.
"""

from __future__ import annotations

import ipaddress
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

from duplexbench.contract import Transport
from duplexbench.contract.envelope import MAX_TOPIC_LENGTH, TOPIC_PATTERN

__all__ = ["ARRIVALS", "HTTP_VERSIONS", "PATTERNS", "UPSTREAMS", "LoadSpec", "SpecError"]

PATTERNS = ("fanout", "echo", "chat")
UPSTREAMS = ("post", "transport")
ARRIVALS = ("uniform", "poisson")
HTTP_VERSIONS = ("1.1", "2")
#: Subscriptions one HTTP/2 connection may carry (nginx is configured for 256 streams).
MAX_STREAMS_PER_CONNECTION = 128
MAX_PAYLOAD_BYTES = 1 << 20  # the servers' default --max-payload


class SpecError(ValueError):
    """A load spec that cannot be run; the message names the field."""


@dataclass(frozen=True, slots=True)
class LoadSpec:
    transport: str  # longpoll | sse | ndjson | websocket | tcp
    sub_url: str  # where subscribers connect (a delaying proxy's URL when one is in the path)
    pub_url: str = ""  # where publishers connect: the server itself ("" = sub_url)
    pattern: str = "fanout"  # fanout | echo | chat
    clients: int = 10  # subscribers (simulated clients)
    topics: int = 1  # fanout: topics; chat: rooms; echo: ignored (one per client)
    topic_prefix: str = "t"  # topics are "{prefix}-{k}": unique per point, so fresh
    rate: float = 100.0  # messages/s published in total, open loop
    payload_bytes: int = 64
    upstream: str = "post"  # post | transport (WS frames, TCP lines; HTTP transports POST anyway)
    arrival: str = "uniform"  # uniform | poisson send times
    seed: int = 1  # for poisson arrivals
    warmup_s: float = 1.0  # published and delivered, not counted
    duration_s: float = 5.0  # the measurement window
    drain_s: float = 5.0  # wait after the last publish for in-flight messages
    keepalive: bool = True  # long polling: False = Connection: close per poll
    max_batch: int = 1000  # long polling: ?max=
    connect_concurrency: int = 100  # subscribers connecting at once
    progress_interval_s: float = 0.5  # progress events on stdout
    poll_timeout_s: float = 30.0  # long polling: ?timeout= (server holds this long)
    publish_pool: int = 8  # keep-alive POST connections (= publishes in flight)
    drain_max_s: float = 10.0  # upper bound on waiting for stragglers after the window
    loadgen_procs: int = 1  # subscriber shard processes
    loadgen_cpus: tuple[int, ...] = ()  # cores for the shards, round-robin (empty: don't pin)
    publisher_cpu: int | None = None  # core for the publisher process (None: don't pin)
    source_addrs: tuple[str, ...] = ()  # 127.0.0.x the subscribers bind to, round-robin
    ca_file: str = ""  # TLS: verify https / wss with this CA (PEM)
    reconnect_min_s: float = 0.1  # back-off after a lost connection: full jitter,
    reconnect_max_s: float = 5.0  # doubling from min to max (RFC 6455 7.2.3)
    # HTTP version of the subscribers and the publisher: "1.1", or "2" (h2 by ALPN over
    # https, h2c with prior knowledge over http; WebSocket as RFC 8441 where offered).
    http: str = "1.1"
    # HTTP/2: subscriptions multiplexed on one connection (a page with N components).
    streams_per_connection: int = 1

    def __post_init__(self) -> None:
        _check_choice("transport", self.transport, tuple(t.value for t in Transport))
        _check_url("sub_url", self.sub_url)
        if self.pub_url:
            _check_url("pub_url", self.pub_url)
        _check_choice("pattern", self.pattern, PATTERNS)
        _check_choice("upstream", self.upstream, UPSTREAMS)
        _check_choice("arrival", self.arrival, ARRIVALS)
        _check_int("clients", self.clients, 1)
        _check_int("topics", self.topics, 1)
        if self.pattern == "chat" and self.topics > self.clients:
            raise SpecError(
                f"topics: {self.topics} rooms for {self.clients} clients leaves rooms empty; "
                "expected topics <= clients"
            )
        _check_number("rate", self.rate, 0.0)
        _check_int("payload_bytes", self.payload_bytes, 1, MAX_PAYLOAD_BYTES)
        _check_int("seed", self.seed, 0)
        _check_number("warmup_s", self.warmup_s, 0.0)
        _check_number("duration_s", self.duration_s, 0.0, strict=True)
        _check_number("drain_s", self.drain_s, 0.0)
        if not isinstance(self.keepalive, bool):
            raise SpecError(f"keepalive: expected true or false, got {self.keepalive!r}")
        _check_int("max_batch", self.max_batch, 1)
        _check_int("connect_concurrency", self.connect_concurrency, 1)
        _check_number("progress_interval_s", self.progress_interval_s, 0.0, strict=True)
        _check_number("poll_timeout_s", self.poll_timeout_s, 0.0, strict=True)
        _check_int("publish_pool", self.publish_pool, 1, 256)
        _check_number("drain_max_s", self.drain_max_s, 0.0, strict=True)
        _check_int("loadgen_procs", self.loadgen_procs, 1, 256)
        if self.loadgen_procs > 1 and self.transport_upstream and self.pattern != "fanout":
            raise SpecError("loadgen_procs: echo / chat with upstream = transport publish on the "
                            "subscribers' own sockets, which a sharded point cannot time from one "
                            "publisher; expected loadgen_procs = 1 or upstream = post")
        # JSON has no tuples: lists from a spec file become tuples (hashable, frozen).
        object.__setattr__(self, "loadgen_cpus", _int_tuple("loadgen_cpus", self.loadgen_cpus))
        object.__setattr__(self, "source_addrs", _addr_tuple(self.source_addrs))
        if self.publisher_cpu is not None:
            _check_int("publisher_cpu", self.publisher_cpu, 0)
        if not isinstance(self.ca_file, str):
            raise SpecError(f"ca_file: expected a path, got {self.ca_file!r}")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise SpecError(f"ca_file: {self.ca_file!r} is not a readable file (a PEM CA certificate)")
        _check_number("reconnect_min_s", self.reconnect_min_s, 0.0, strict=True)
        _check_number("reconnect_max_s", self.reconnect_max_s, 0.0, strict=True)
        self._check_http()
        if self.reconnect_max_s < self.reconnect_min_s:
            raise SpecError(f"reconnect_max_s: {self.reconnect_max_s} is below "
                            f"reconnect_min_s {self.reconnect_min_s}; expected max >= min")
        longest = f"{self.topic_prefix}-{max(self.clients, self.topics)}"
        if not TOPIC_PATTERN.fullmatch(longest):
            raise SpecError(
                f"topic_prefix: {self.topic_prefix!r} makes topics like {longest!r}; expected "
                f"A-Z a-z 0-9 _ . - and at most {MAX_TOPIC_LENGTH} characters in all"
            )

    def _check_http(self) -> None:
        _check_choice("http", self.http, HTTP_VERSIONS)
        _check_int("streams_per_connection", self.streams_per_connection, 1,
                   MAX_STREAMS_PER_CONNECTION)
        if self.http == "1.1" and self.streams_per_connection > 1:
            raise SpecError(f"streams_per_connection: {self.streams_per_connection} needs http = 2 "
                            "(HTTP/1.1 carries one request at a time per connection)")
        if self.http == "2" and self.transport == "longpoll" and not self.keepalive:
            raise SpecError("keepalive: false (Connection: close per poll) has no HTTP/2 form; "
                            "expected keepalive = true with http = 2")
        if self.http == "2" and self.ws_upstream and self.pattern == "fanout":
            raise SpecError("upstream: the publisher process publishes over RFC 6455 WebSockets "
                            "only; with http = 2 expected upstream = post (or pattern echo / chat, "
                            "which publish on the subscribers' own RFC 8441 streams)")

    # Derived values

    @property
    def publish_url(self) -> str:
        return self.pub_url or self.sub_url

    @property
    def topic_count(self) -> int:
        """How many topics the point uses (echo: one per client)."""
        return self.clients if self.pattern == "echo" else self.topics

    def topic(self, k: int) -> str:
        return f"{self.topic_prefix}-{k}"

    def ssl_context(self):
        """The client TLS context for https / wss (None for plain http): verifies the
        server's certificate against ``ca_file`` (else the system's CAs)."""
        if not (self.sub_url.startswith("https:") or self.publish_url.startswith("https:")
                or self.ca_file):
            return None
        import ssl
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if self.http == "2":  # ALPN: only h2 (the clients refuse a server that picks http/1.1)
            context.set_alpn_protocols(["h2"])
        return context

    @property
    def ws_upstream(self) -> bool:
        """Whether messages go up as WebSocket frames rather than POSTs."""
        return self.transport == Transport.WEBSOCKET.value and self.upstream == "transport"

    @property
    def transport_upstream(self) -> bool:
        """Whether messages go up the transport's own connections (WebSocket frames, TCP
        publish lines) rather than as POSTs."""
        return self.upstream == "transport" and self.transport in (
            Transport.WEBSOCKET.value, Transport.TCP.value)

    # JSON

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "LoadSpec":
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise SpecError(f"load spec is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise SpecError("load spec must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise SpecError(f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        missing = [name for name in ("transport", "sub_url") if name not in obj]
        if missing:
            raise SpecError(f"missing field(s) {', '.join(missing)}")
        return cls(**obj)

    @classmethod
    def from_file(cls, path: str | Path) -> "LoadSpec":
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SpecError(f"cannot read load spec {path}: {exc.strerror}") from None
        try:
            return cls.from_json(text)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise SpecError(f"{name}: expected an integer {bound}, got {value!r}")


def _check_number(name: str, value: object, low: float, strict: bool = False) -> None:
    ok = (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value) and (value > low if strict else value >= low)
    )
    if not ok:
        raise SpecError(f"{name}: expected a number {'>' if strict else '>='} {low:g}, got {value!r}")


def _int_tuple(name: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"{name}: expected a list of core numbers, got {value!r}")
    for v in value:
        _check_int(name, v, 0)
    return tuple(value)


def _addr_tuple(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"source_addrs: expected a list of IPv4 addresses, got {value!r}")
    for v in value:
        try:
            ipaddress.IPv4Address(v)
        except (ValueError, TypeError):
            raise SpecError(f"source_addrs: {v!r} is not an IPv4 address (e.g. 127.0.0.2)") from None
    return tuple(value)


def _check_url(name: str, value: object) -> None:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise SpecError(f"{name}: expected http://HOST:PORT, got {value!r}")
    try:
        parts.port
    except ValueError:
        raise SpecError(f"{name}: bad port in {value!r}") from None
