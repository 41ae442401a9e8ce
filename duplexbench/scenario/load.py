"""A scenario, and how ``scenarios/*.toml`` is loaded and validated into it.

A scenario is the shared workload every transport is measured with, so one
parser checks it once, up front: a typo found after ten minutes of
benchmarking costs ten minutes. Every error names the file, the key and what
was expected; unknown keys are errors too (with a did-you-mean), because a
misspelt ``duraton_s`` silently falling back to the default is a wrong result.

:meth:`Scenario.points` expands the sweep (lists of clients, rates, payload
sizes, delays, keep-alive modes) into :class:`LoadPoint` objects, repeats
outermost so a regression run interleaves transports across repeats.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .check import (
    Checker,
    Invalid,
    ScenarioError,
    boolean,
    choice,
    choices_list,
    did_you_mean,
    integer,
    list_of,
    nonneg_float,
    one_of,
    percent,
    pos_float,
    pos_int,
    scenario_name,
    string,
)
from .faults import FaultError, FaultOptions, parse_faults
from .http import OUTSIDE_STACK
from .http import check_http as _check_http
from .http import http_path
from .loadpoint import LoadPoint
from .options import (
    ARRIVALS,
    BROKERS,
    ENGINE_TRANSPORTS,
    ENGINES,
    MAX_WORKERS,
    HTTP_VERSIONS,
    NETWORK_MODES,
    STACKS,
    PATTERNS,
    TRANSPORTS,
    UPSTREAMS,
    WEB_TRANSPORTS,
    LongPollOptions,
    NetworkOptions,
    ServerOptions,
)
from .proxy import ProxyOptions, ProxyOptionsError, parse_proxy, proxy_variants

__all__ = ["Scenario", "load_scenario", "parse_scenario"]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str                                  # file it came from ("" when built in code)
    description: str = ""
    #: Default: the web transports; plain TCP (the floor, docs/floor.md) is asked for by name.
    transports: tuple[str, ...] = WEB_TRANSPORTS
    #: The first (or only) pattern: the one the report compares transports at.
    pattern: str = "fanout"
    #: ``pattern = ["fanout", "echo"]``: every pattern swept, the first being ``pattern``;
    #: () when the scenario has one (use :meth:`sweep_patterns`).
    patterns: tuple[str, ...] = ()
    clients: tuple[int, ...] = (20, 100)
    rate: tuple[float, ...] = (200.0,)
    payload_bytes: tuple[int, ...] = (64,)
    topics: int = 1
    upstream: str = "post"
    arrival: str = "uniform"
    warmup_s: float = 2.0
    duration_s: float = 8.0
    drain_s: float = 3.0
    repeats: int = 1
    expect_loss: bool = False
    seed: int = 1
    server: ServerOptions = field(default_factory=ServerOptions)
    longpoll: LongPollOptions = field(default_factory=LongPollOptions)
    network: NetworkOptions | None = None
    proxy: ProxyOptions | None = None
    #: Load generators swept per point (``engine = "browser"`` or a list); () = --engine.
    engines: tuple[str, ...] = ()
    #: What goes wrong during each point (duplexbench/faults); None = nothing.
    faults: FaultOptions | None = None
    #: Free-form options for an engine (the ``[engine]`` table, e.g. Locust workers).
    engine_options: dict = field(default_factory=dict, hash=False)
    #: HTTP versions swept per point (docs/http2.md): "1.1" and/or "2".
    http: tuple[str, ...] = ("1.1",)
    #: Subscriptions per HTTP/2 connection (a page with N components); HTTP/1.1 points use 1.
    streams_per_connection: int = 1

    def sweep_patterns(self) -> tuple[str, ...]:
        """The patterns the points run: the sweep, or the one pattern."""
        return self.patterns or (self.pattern,)

    def points(self) -> list[LoadPoint]:
        """Every load point: repeat, then transport, pattern, clients, rate, payload, delay,
        keep-alive, TLS, workers and broker, fault."""
        delays = self.network.delay_ms if self.network else (0.0,)
        faults = self.faults.kind if self.faults else ("",)
        points: list[LoadPoint] = []
        for repeat in range(self.repeats):
            for transport in self.transports:
                # Keep-alive is a long-polling knob; other transports run once.
                keepalives = self.longpoll.keepalive if transport == "longpoll" else (True,)
                for stack, pattern, engine, (proxy, buffering, accel, gzip), http, clients, \
                        rate, payload, delay, keepalive, tls, (workers, broker), fault \
                        in itertools.product(
                            self.server.stack, self.sweep_patterns(), self.engines or ("",),
                            proxy_variants(self.proxy, transport), self.http, self.clients,
                            self.rate, self.payload_bytes, delays, keepalives,
                            self.server.tls, self.server.topologies(), faults):
                    if not http_path(stack, proxy, http):
                        continue
                    # Plain TCP has no HTTP version (its one point is the HTTP/1.1 one), and
                    # the Node reference is one process (workers are the aiohttp servers').
                    if (transport == "tcp" and http != "1.1") or \
                            (stack == "node" and (workers, broker) != (1, "none")):
                        continue
                    points.append(LoadPoint(
                        index=len(points), repeat=repeat, transport=transport,
                        clients=clients, rate=rate, payload_bytes=payload,
                        delay_ms=delay, keepalive=keepalive, tls=tls, proxy=proxy,
                        proxy_buffering=buffering, accel_header=accel, proxy_gzip=gzip,
                        engine=engine, fault=fault, workers=workers, broker=broker,
                        pattern=pattern if self.patterns else "", http=http, stack=stack,
                        streams_per_connection=self.streams_per_connection if http == "2" else 1,
                    ))
        return points

    def check_engine(self, engine: str = "native") -> None:
        """Refuse, before anything runs, a transport the points' engine cannot run: the
        scenario's ``engine`` sweep, else ``engine`` (the command line's)."""
        for kind in self.engines or (engine,):
            runs, why = ENGINE_TRANSPORTS.get(kind, ((), ""))
            refused = [t for t in self.transports if t not in runs]
            if refused:
                raise ScenarioError(
                    f"{self.path or self.name}: engine {kind!r} cannot run transport "
                    f"{', '.join(map(repr, refused))}: {why}; use the native engine for it, or "
                    f"leave it out (transports = {[t for t in self.transports if t in runs]})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, TOML-shaped dict (``parse_scenario(s.to_dict())`` gives ``s`` back)."""
        data = dataclasses.asdict(self)
        patterns = data.pop("patterns")
        if patterns:
            data["pattern"] = patterns
        data["engine"] = data.pop("engine_options")
        engines = data.pop("engines")
        if engines:
            data["engine"] = {**data["engine"], "kind": engines}
        if data["network"] is None:
            del data["network"]
        if data["proxy"] is None:
            del data["proxy"]
        if data["faults"] is None:
            del data["faults"]
        return _lists(data)

    def with_overrides(self, **changes: Any) -> "Scenario":
        """A copy with fields replaced, validated like a file (``transports=["sse"]``)."""
        data = self.to_dict()
        for key, value in changes.items():
            if key == "engine_options":
                key = "engine"
            if key not in data and key not in _TOP_KEYS:
                raise ScenarioError(
                    f"{self.path or self.name}: override {key!r}: not a scenario field"
                    + did_you_mean(key, [*_TOP_KEYS, "engine_options"])
                )
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            if value is None:
                data.pop(key, None)
            else:
                data[key] = _lists(value)
        outside = tuple(self.server.stack) == (OUTSIDE_STACK,)
        if outside:
            data["server"] = {k: v for k, v in data.get("server", {}).items() if k != "stack"}
        return parse_scenario(data, path=self.path, outside=outside)


def _lists(value: Any) -> Any:
    """Tuples to lists, recursively (JSON and TOML have lists only)."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


# ---------------------------------------------------------------------------
# Loading and validation


def load_scenario(path: str | Path, outside: bool = False) -> Scenario:
    """Read and validate a scenario file; raises :class:`ScenarioError`. ``outside``: its
    points will measure an outside server (``--server-url``), see :func:`parse_scenario`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    return parse_scenario(data, path=str(path), outside=outside)


def parse_scenario(data: dict[str, Any], path: str = "", outside: bool = False) -> Scenario:
    """Validate a TOML-shaped dict (as :func:`tomllib.load` returns) into a Scenario.

    ``outside``: the points measure an outside server (``--server-url``), which runs what it
    runs: ``[server] stack`` becomes "outside" (every HTTP version direct, scenario/http.py),
    so a file's ``http = "2"`` is judged against that server, not against ours."""
    checker = Checker(path or str(data.get("name", "<scenario>")), data)
    defaults = Scenario(name="_", path="")
    c = checker
    c.unknown(_TOP_KEYS, "")
    name = c.get("name", scenario_name, "a name of letters, digits, '_', '.', '-'", None)
    if name is None:
        if not path:
            raise ScenarioError(f"{c.source}: key 'name': expected a scenario name, got nothing")
        name = Path(path).stem
    transports = c.get("transports", choices_list(TRANSPORTS),
                       f"a non-empty list of transports from {list(TRANSPORTS)}, each once",
                       defaults.transports)
    pattern = c.get("pattern", _pattern_sweep, f"{one_of(PATTERNS)}, or a list of them "
                    "(each once)", defaults.pattern)
    patterns: tuple[str, ...] = ()
    if isinstance(pattern, tuple):  # a sweep: the first is the one the report compares at
        pattern, patterns = pattern[0], (pattern if len(pattern) > 1 else ())
    clients = c.get("clients", list_of(pos_int), "a positive integer or a list of them",
                    defaults.clients)
    rate = c.get("rate", list_of(pos_float), "a positive number or a list of them",
                 defaults.rate)
    payload = c.get("payload_bytes", list_of(pos_int),
                    "a positive integer or a list of them", defaults.payload_bytes)
    topics = c.get("topics", pos_int, "a positive integer", defaults.topics)
    upstream = c.get("upstream", choice(UPSTREAMS), one_of(UPSTREAMS), defaults.upstream)
    arrival = c.get("arrival", choice(ARRIVALS), one_of(ARRIVALS), defaults.arrival)
    warmup = c.get("warmup_s", nonneg_float, "a number of seconds >= 0", defaults.warmup_s)
    duration = c.get("duration_s", pos_float, "a number of seconds > 0", defaults.duration_s)
    drain = c.get("drain_s", nonneg_float, "a number of seconds >= 0", defaults.drain_s)
    repeats = c.get("repeats", pos_int, "a positive integer", defaults.repeats)
    expect_loss = c.get("expect_loss", boolean, "true or false", defaults.expect_loss)
    seed = c.get("seed", integer, "an integer", defaults.seed)
    description = c.get("description", string, "a string", defaults.description)
    http = c.get("http", choices_list(HTTP_VERSIONS),
                 f"one of {list(HTTP_VERSIONS)} or a list of them, each once", defaults.http)
    streams = c.get("streams_per_connection", pos_int, "an integer from 1 to 128",
                    defaults.streams_per_connection)

    server = _server(c.table("server"))
    if outside:
        server = dataclasses.replace(server, stack=(OUTSIDE_STACK,))
    longpoll = _longpoll(c.table("longpoll"))
    net_table = c.table("network", default=None)
    network = _network(net_table) if net_table is not None else None
    engines = _engines(c)
    # ``engine`` may be a kind or a list of kinds instead of a table (docs/browser.md).
    engine_options = _engine(c.table("engine")) if isinstance(data.get("engine"), dict) else {}
    proxy = None
    if "proxy" in data:
        try:
            proxy = parse_proxy(data["proxy"])
        except ProxyOptionsError as exc:
            raise ScenarioError(f"{c.source}: {exc}") from None
    swept = patterns or (pattern,)
    if "browser" in engines and (swept != ("fanout",) or topics != 1):
        raise ScenarioError(f"{c.source}: key 'engine': the browser engine runs pattern "
                            f"'fanout' on one topic, got pattern {pattern if not patterns else list(patterns)!r} "
                            f"with {topics} topic(s)")
    if proxy is not None and "tcp" in transports and any(k != "none" for k in proxy.kind):
        raise ScenarioError(
            f"{c.source}: key 'proxy': nginx proxies HTTP and WebSocket; transport 'tcp' has no "
            "HTTP for it to carry (a point through it would silently bypass it on the TCP "
            "port): run tcp without [proxy], or with proxy.kind = [\"none\"]")
    faults = None
    if "faults" in data:
        try:
            faults = parse_faults(data["faults"], duration)
        except FaultError as exc:
            raise ScenarioError(f"{c.source}: {exc}") from None
        _check_fault_topology(c.source, faults, server)

    _check_http(c.source, http=http, streams=streams, server=server, proxy=proxy,
                transports=transports, keepalive=longpoll.keepalive, upstream=upstream,
                pattern=pattern, engines=engines, tls=server.tls)
    too_big = [p for p in payload if p > server.max_payload]
    if too_big:
        raise ScenarioError(
            f"{c.source}: key 'payload_bytes': {too_big[0]} is above the server's maximum "
            f"payload of {server.max_payload} bytes (key 'server.max_payload'): every publish "
            "would be refused (413 / close 1009)"
        )
    # A window that holds no scheduled message measures nothing and would read as "ok".
    for r in rate:
        if r * duration < 1:
            raise ScenarioError(
                f"{c.source}: key 'duration_s' (--duration): at rate {r:g} msg/s a measurement "
                f"window of {duration:g} s holds {r * duration:.2f} messages: make duration_s "
                f">= {1 / r:g} s or raise 'rate'"
            )
    if "chat" in swept:
        too_few = [n for n in clients if n < topics]
        if too_few:
            raise ScenarioError(
                f"{c.source}: key 'clients': expected at least one client per room "
                f"(topics = {topics}) for pattern 'chat', got {too_few[0]}"
            )
    scenario = Scenario(
        name=name, path=path, description=description, transports=transports,
        pattern=pattern, patterns=patterns, clients=clients, rate=rate, payload_bytes=payload, topics=topics,
        upstream=upstream, arrival=arrival, warmup_s=warmup, duration_s=duration,
        drain_s=drain, repeats=repeats, expect_loss=expect_loss, seed=seed,
        server=server, longpoll=longpoll, network=network, proxy=proxy, engines=engines,
        faults=faults,
        engine_options=engine_options, http=http, streams_per_connection=streams,
    )
    if engines:  # the scenario's own engine sweep; the command line's is checked by the command
        scenario.check_engine()
    return scenario


def _pattern_sweep(value: Any) -> "str | tuple[str, ...]":
    """``pattern``: one of PATTERNS, or a list of them (each once): a sweep."""
    if isinstance(value, str):
        return choice(PATTERNS)(value)
    return choices_list(PATTERNS)(value)


_TOP_KEYS = (
    "name", "path", "description", "transports", "pattern", "clients", "rate",
    "payload_bytes", "topics", "upstream", "arrival", "warmup_s", "duration_s", "drain_s",
    "repeats", "expect_loss", "seed", "server", "longpoll", "network", "faults", "engine",
    "proxy", "http", "streams_per_connection",
)


def _engines(c: "Checker") -> tuple[str, ...]:
    """The engine sweep: ``engine = "browser"``, ``engine = ["native", "browser"]`` or
    ``kind`` in an ``[engine]`` table (the same values); () = the command line's."""
    value = c.data.get("engine")
    if isinstance(value, dict):
        value = value.get("kind")
    if value is None:
        return ()
    try:
        return choices_list(ENGINES)(value)
    except Invalid:
        raise ScenarioError(
            f"{c.source}: key 'engine': expected a table, one of {list(ENGINES)} or a list "
            f"of them (each once), got {value!r}") from None


def _worker_count(value: Any) -> int:
    if pos_int(value) > MAX_WORKERS:
        raise Invalid
    return value


def _topology(c: "Checker", d: ServerOptions) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """``workers`` and ``broker``: each a value or a list (a sweep), each value once; a
    worker count above 1 needs ``broker`` to offer "redis" (servers/config.py refuses it)."""
    workers = c.get("workers", list_of(_worker_count),
                    f"a number of server processes from 1 to {MAX_WORKERS} or a list of them",
                    d.workers)
    broker = c.get("broker", choices_list(BROKERS),
                   f"{one_of(BROKERS)} or a list of them (each once)", d.broker)
    if len(set(workers)) != len(workers):
        raise ScenarioError(f"{c.source}: key 'server.workers': expected each value once, "
                            f"got {list(workers)}")
    several = [n for n in workers if n > 1]
    if several and broker == ("none",):
        raise ScenarioError(
            f"{c.source}: key 'server.broker': workers = {several[0]} needs broker = \"redis\": "
            "the workers share their topics, sequence numbers and epoch through the broker "
            "(with broker = [\"none\", \"redis\"] one worker runs both ways, more only with Redis)")
    return workers, broker


def _check_fault_topology(source: str, faults: FaultOptions, server: ServerOptions) -> None:
    """kill-worker needs workers to kill: every point must have a broker (a parent and its
    worker processes), since the [faults] sweep applies to every point."""
    if "kill-worker" in faults.kind and "none" in server.broker:
        raise ScenarioError(
            f"{source}: key 'faults.kind': kill-worker kills one worker process of a server "
            "started with --workers N --broker redis: set [server] broker = \"redis\" (and "
            "workers >= 2, so its clients have another worker to go to); the one-process "
            f"server (broker \"none\") has no worker to kill, got broker = {list(server.broker)}")


def _server(c: "Checker | None") -> ServerOptions:
    d = ServerOptions()
    if c is None:
        return d
    c.unknown(("queue_limit", "heartbeat_s", "ping_interval_s", "retention", "uvloop",
               "max_payload", "tls", "workers", "broker", "stack"), "server.")
    tls = c.get("tls", list_of(boolean), "true, false or [false, true]", d.tls)
    if len(set(tls)) != len(tls):
        raise ScenarioError(f"{c.source}: key 'server.tls': expected each value once, got {list(tls)}")
    workers, broker = _topology(c, d)
    stack = c.get("stack", choices_list(STACKS),
                  f"one of {list(STACKS)} or a list of them, each once", d.stack)
    return ServerOptions(
        tls=tls, workers=workers, broker=broker, stack=stack,
        queue_limit=c.get("queue_limit", pos_int, "a positive integer", d.queue_limit),
        heartbeat_s=c.get("heartbeat_s", pos_float, "a number of seconds > 0", d.heartbeat_s),
        ping_interval_s=c.get("ping_interval_s", pos_float, "a number of seconds > 0",
                              d.ping_interval_s),
        retention=c.get("retention", pos_int, "a positive integer", d.retention),
        uvloop=c.get("uvloop", boolean, "true or false", d.uvloop),
        max_payload=c.get("max_payload", pos_int, "a positive number of bytes", d.max_payload),
    )


#: Keys of the ``[engine]`` table: Locust workers, native load-generator processes.
_ENGINE_KEYS = ("workers", "loadgen_procs")


#: Options of the browser engine (docs/browser.md), beside ``kind`` (the engine sweep).
_BROWSER_ENGINE_KEYS = ("per_page", "poll_timeout_s")


def _engine(c: "Checker | None") -> dict:
    if c is None:
        return {}
    c.unknown((*_ENGINE_KEYS, "kind", *_BROWSER_ENGINE_KEYS), "engine.")
    options = {}
    for key in _ENGINE_KEYS:
        value = c.get(key, pos_int, "a positive integer", None)
        if value is not None:
            options[key] = value
    browser = {"per_page": (pos_int, "a positive integer"),
               "poll_timeout_s": (pos_float, "a number of seconds > 0")}
    for key, (convert, expected) in browser.items():
        value = c.get(key, convert, expected, None)
        if value is not None:
            options[key] = value
    return options


def _longpoll(c: "Checker | None") -> LongPollOptions:
    d = LongPollOptions()
    if c is None:
        return d
    c.unknown(("keepalive", "max_batch"), "longpoll.")
    keepalive = c.get("keepalive", list_of(boolean), "true, false or a list of them",
                      d.keepalive)
    if len(set(keepalive)) != len(keepalive):
        raise ScenarioError(f"{c.source}: key 'longpoll.keepalive': expected each value once, "
                            f"got {list(keepalive)}")
    return LongPollOptions(
        keepalive=keepalive,
        max_batch=c.get("max_batch", pos_int, "a positive integer", d.max_batch),
    )


def _network(c: "Checker") -> NetworkOptions:
    d = NetworkOptions()
    c.unknown(("delay_ms", "jitter_ms", "bandwidth_kbps", "loss_pct", "mode"), "network.")
    return NetworkOptions(
        delay_ms=c.get("delay_ms", list_of(nonneg_float),
                       "a number of milliseconds >= 0 or a list of them", d.delay_ms),
        jitter_ms=c.get("jitter_ms", nonneg_float, "a number of milliseconds >= 0",
                        d.jitter_ms),
        bandwidth_kbps=c.get("bandwidth_kbps", nonneg_float,
                             "a number of kbit/s >= 0 (0 = unlimited)", d.bandwidth_kbps),
        loss_pct=c.get("loss_pct", percent, "a percentage from 0 to 100", d.loss_pct),
        mode=c.get("mode", choice(NETWORK_MODES), one_of(NETWORK_MODES), d.mode),
    )
