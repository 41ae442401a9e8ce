"""Server settings: one frozen dataclass parsed from the command line and env.

Everything that changes what a server measures lives here, so a run's
configuration is one value that can be printed, compared and tested. Invalid
values fail at start-up with a message naming the option, never later.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

from .gcpolicy import GC_POLICIES

__all__ = [
    "ALL_TRANSPORTS",
    "BROKERS",
    "ConfigError",
    "ENV_WORKER_INDEX",
    "InjectConfig",
    "MAX_CPU_US",
    "MIN_PAD_BYTES",
    "ServerConfig",
    "build_parser",
    "inject_from_env",
    "parse_config",
]

#: What ``--transport all`` mounts, in the order the start-up line lists them
#: (``tcp`` is a second listener, on ``--tcp-port``).
ALL_TRANSPORTS = ("longpoll", "stream", "websocket", "tcp")
#: Where the hub lives: "none" = in this process's memory; "redis" = Redis Streams shared
#: by --workers processes (servers/broker.py, servers/workers.py).
BROKERS = ("none", "redis")

ENV_DELAY = "DUPLEXBENCH_INJECT_DELAY_MS"
ENV_PAD = "DUPLEXBENCH_INJECT_PAD_BYTES"
ENV_CPU = "DUPLEXBENCH_INJECT_CPU_US"
#: A busy-wait longer than this per delivery would stall the server, not measure it.
MAX_CPU_US = 1_000_000
#: Set by the parent of --workers on each worker's environment: its index (servers/workers.py).
ENV_WORKER_INDEX = "DUPLEXBENCH_WORKER_INDEX"
#: ``,"pad":""`` is 9 bytes: the smallest growth the pad field can add.
MIN_PAD_BYTES = 9


class ConfigError(ValueError):
    """A setting is invalid; the message names it and says what is expected."""


@dataclass(frozen=True, slots=True)
class InjectConfig:
    """Deliberate regressions, so the regression gate can be shown to catch them."""

    delay_ms: float = 0.0  # slept before each delivery (per write batch)
    pad_bytes: int = 0  # every delivered envelope grows by exactly this many bytes
    cpu_us: int = 0  # CPU busy-waited per delivered message (per subscriber write)

    def as_json(self) -> dict:
        return {"delay_ms": self.delay_ms, "pad_bytes": self.pad_bytes, "cpu_us": self.cpu_us}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    transports: tuple[str, ...] = ALL_TRANSPORTS
    host: str = "127.0.0.1"
    port: int = 8080
    tcp_port: int = 0  # the plain-TCP listener's port when "tcp" is mounted (0: a free one)
    uvloop: bool = False
    retention: int = 10_000  # messages kept per topic for resume
    retention_bytes: int = 64 * 1024 * 1024  # envelope bytes kept per topic (memory bound)
    max_topics: int = 100_000  # topics are client-named: bound them
    queue_limit: int = 1000  # messages queued per connection before it is dropped
    max_payload: int = 1024 * 1024  # publish body / WS publish data, bytes
    heartbeat_s: float = 15.0  # SSE comment / NDJSON blank line when idle
    ping_interval_s: float = 20.0  # WebSocket ping
    ping_timeout_s: float = 20.0  # WebSocket pong deadline
    poll_timeout_cap_s: float = 120.0  # longest hold a poll may ask for
    max_batch: int = 10_000  # largest ?max= a poll may ask for
    shutdown_timeout_s: float = 5.0  # graceful close budget before handlers are cancelled
    allow_origins: tuple[str, ...] = ()  # besides no-Origin and same-origin; "*" = any
    #: Behind a TLS-terminating proxy: the Origin check takes the scheme from the proxy's
    #: X-Forwarded-Proto (a page at https://front is same-origin with the http upstream).
    trust_forwarded_proto: bool = False
    slow_grace_s: float = 2.0  # a full queue is tolerated this long before "slow consumer"
    accel_buffering_header: bool = True  # X-Accel-Buffering: no on streams
    tls_cert: str = ""  # PEM chain: serve https / wss (with tls_key)
    tls_key: str = ""
    tls_dir: str = ""  # --tls without a certificate: generate one (and its CA) here ("-": a temp dir)
    gc: str = "tuned"  # garbage-collector policy (servers/gcpolicy.py)
    inject: InjectConfig = InjectConfig()
    workers: int = 1  # server processes on the port (SO_REUSEPORT), supervised by a parent
    broker: str = "none"  # "redis": the hub's topics live in Redis (servers/broker.py)
    redis_url: str = ""  # redis://HOST:PORT/DB of --broker redis
    worker_cpus: tuple[int, ...] = ()  # worker k pinned to worker_cpus[k % len]; () = inherit
    worker_index: int = -1  # set by the parent (env DUPLEXBENCH_WORKER_INDEX); -1 = not a worker

    @property
    def brokered(self) -> bool:
        """True when the hub is the broker's (parent + workers), False for today's server."""
        return self.broker != "none"


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option shows its default; flags say theirs in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default:" in text or action.default == argparse.SUPPRESS:  # e.g. --help
            return text
        if action.nargs == 0:  # a flag: say what it is when not given
            return f"{text} (default: {'on' if action.default else 'off'})"
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m servers",
        description="duplexbench server: long polling, HTTP streaming and WebSocket on one hub. "
        "The wire contract is servers/README.md.",
        epilog=f"Env: {ENV_DELAY}=MS (each delivery ~MS ms late), "
        f"{ENV_PAD}=N (N >= {MIN_PAD_BYTES}: each envelope grows by N bytes), "
        f"{ENV_CPU}=N (N us of CPU busy-waited per delivered message).",
        formatter_class=_DefaultsFormatter,
    )
    d = ServerConfig()
    add = p.add_argument
    add("--transport", choices=[*ALL_TRANSPORTS, "all"], default="all",
        help="which of /poll, /stream, /ws and the plain-TCP listener to mount "
        "(/publish, /healthz, /metrics always are)")
    add("--host", default=d.host, help="address to listen on")
    add("--port", type=int, default=d.port, help="port to listen on; 0 picks a free one")
    add("--tcp-port", type=int, default=None, metavar="PORT",
        help="port of the plain-TCP listener (0 picks a free one; giving it mounts tcp beside "
        "--transport) (default: 0 with --transport all or tcp, else no listener)")
    add("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    add("--retention", type=int, default=d.retention, help="messages kept per topic for resume")
    add("--retention-bytes", type=int, default=d.retention_bytes,
        help="envelope bytes kept per topic (memory bound)")
    add("--max-topics", type=int, default=d.max_topics,
        help="topics the server holds at most (one more publish: 503)")
    add("--queue-limit", type=int, default=d.queue_limit,
        help="messages queued per stream/WebSocket connection (its high-water mark)")
    add("--slow-grace", type=float, default=d.slow_grace_s,
        help="seconds a connection's queue may stay full before it is dropped as a slow consumer")
    add("--max-payload", type=int, default=d.max_payload,
        help="bytes per publish (POST body, WebSocket data)")
    add("--heartbeat", type=float, default=d.heartbeat_s,
        help="stream heartbeat after this many seconds of silence")
    add("--ping-interval", type=float, default=d.ping_interval_s, help="WebSocket ping every s")
    add("--ping-timeout", type=float, default=d.ping_timeout_s,
        help="WebSocket peer dropped when its Pong is later than this (s)")
    add("--poll-timeout-cap", type=float, default=d.poll_timeout_cap_s,
        help="longest hold (s) a poll's ?timeout= may ask for")
    add("--max-batch", type=int, default=d.max_batch,
        help="most messages per poll answer; a larger ?max= is capped")
    add("--shutdown-timeout", type=float, default=d.shutdown_timeout_s,
        help="seconds a graceful stop may take flushing queues before handlers are cancelled")
    add("--allow-origin", action="append", default=[], metavar="ORIGIN",
        help="cross-origin page allowed on /poll, /stream, /publish, /ws "
        "(repeatable; '*' = any; no Origin and same-origin always are) (default: none)")
    add("--trust-forwarded-proto", action="store_true",
        help="behind a proxy that terminates TLS: the same-origin check uses its "
        "X-Forwarded-Proto as the scheme (default: the listener's own)")
    add("--no-accel-buffering-header", dest="accel_buffering_header", action="store_false",
        help="do not send 'X-Accel-Buffering: no' on streams, for proxy buffering "
        "experiments (default: sent)")
    add("--tls", action="store_true",
        help="serve https/wss with a certificate generated at start (CA path printed)")
    add("--tls-cert", default="", metavar="PEM", help="certificate chain; serve https/wss with it (default: none)")
    add("--tls-key", default="", metavar="PEM", help="private key of --tls-cert (default: none)")
    add("--tls-dir", default="", metavar="DIR",
        help="where --tls writes ca.pem, server.pem, server.key (default: a temp dir)")
    add("--gc", choices=list(GC_POLICIES), default=d.gc,
        help="garbage-collector policy: 'tuned' freezes the start-up objects and collects the "
        "young generation every 1,000,000 net allocations (servers/gcpolicy.py); 'python' keeps "
        "CPython's defaults")
    add("--workers", type=int, default=d.workers,
        help="server processes sharing the port (SO_REUSEPORT) under a supervising parent; "
        "more than 1 needs --broker redis")
    add("--broker", choices=list(BROKERS), default=d.broker,
        help="where topics live: 'none' = this process's memory (one process); 'redis' = "
        "Redis Streams shared by the workers (servers/README.md, 'Workers behind Redis')")
    add("--redis-url", default=d.redis_url, metavar="URL",
        help="Redis of --broker redis, e.g. redis://127.0.0.1:6379/0 (default: none)")
    add("--worker-cpus", default="", metavar="LIST",
        help="pin worker k to core LIST[k mod len] (e.g. 2,3); without it workers inherit "
        "the parent's CPU affinity (default: inherit)")
    return p


def parse_config(argv: list[str] | None, environ: dict[str, str] | None = None) -> ServerConfig:
    """Parse and validate; argparse exits on syntax errors, ConfigError on bad values."""
    args = build_parser().parse_args(argv)
    transports = ALL_TRANSPORTS if args.transport == "all" else (args.transport,)
    if args.tcp_port is not None and "tcp" not in transports:
        transports = (*transports, "tcp")
    config = ServerConfig(
        transports=transports,
        host=args.host,
        port=args.port,
        tcp_port=args.tcp_port or 0,
        uvloop=args.uvloop,
        retention=args.retention,
        retention_bytes=args.retention_bytes,
        max_topics=args.max_topics,
        queue_limit=args.queue_limit,
        max_payload=args.max_payload,
        heartbeat_s=args.heartbeat,
        ping_interval_s=args.ping_interval,
        ping_timeout_s=args.ping_timeout,
        poll_timeout_cap_s=args.poll_timeout_cap,
        max_batch=args.max_batch,
        shutdown_timeout_s=args.shutdown_timeout,
        allow_origins=tuple(o.rstrip("/").lower() for o in args.allow_origin),
        trust_forwarded_proto=args.trust_forwarded_proto,
        slow_grace_s=args.slow_grace,
        accel_buffering_header=args.accel_buffering_header,
        inject=inject_from_env(os.environ if environ is None else environ),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_dir=args.tls_dir or ("-" if args.tls and not args.tls_cert else ""),
        gc=args.gc,
        workers=args.workers,
        broker=args.broker,
        redis_url=args.redis_url,
        worker_cpus=_cpu_list(args.worker_cpus),
        worker_index=_worker_index(os.environ if environ is None else environ),
    )
    _validate(config)
    return config


def _worker_index(environ) -> int:
    """Which worker this process is: the parent (servers/workers.py) says so in the
    environment, not on the command line, which stays the user's."""
    text = environ.get(ENV_WORKER_INDEX, "").strip()
    if not text:
        return -1
    if not text.isdigit():
        raise ConfigError(f"{ENV_WORKER_INDEX}={text!r}: expected a worker number")
    return int(text)


def _cpu_list(text: str) -> tuple[int, ...]:
    try:
        cpus = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--worker-cpus {text!r}: expected core numbers like 2,3") from None
    if any(cpu < 0 for cpu in cpus):
        raise ConfigError(f"--worker-cpus {text!r}: core numbers are 0 or more")
    return cpus


def _validate(c: ServerConfig) -> None:
    if not 0 <= c.port <= 65535:
        raise ConfigError(f"--port {c.port}: expected 0-65535 (0 picks a free port)")
    if not 0 <= c.tcp_port <= 65535:
        raise ConfigError(f"--tcp-port {c.tcp_port}: expected 0-65535 (0 picks a free port)")
    for name, value in [
        ("--retention", c.retention), ("--retention-bytes", c.retention_bytes),
        ("--max-topics", c.max_topics), ("--queue-limit", c.queue_limit),
        ("--max-payload", c.max_payload), ("--max-batch", c.max_batch),
    ]:
        if value < 1:
            raise ConfigError(f"{name} {value}: expected a positive integer")
    if bool(c.tls_cert) != bool(c.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    for name, value in [
        ("--heartbeat", c.heartbeat_s), ("--ping-interval", c.ping_interval_s),
        ("--ping-timeout", c.ping_timeout_s), ("--poll-timeout-cap", c.poll_timeout_cap_s),
        ("--shutdown-timeout", c.shutdown_timeout_s), ("--slow-grace", c.slow_grace_s),
    ]:
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} {value}: expected a positive number of seconds")
    if not 1 <= c.workers <= 256:
        raise ConfigError(f"--workers {c.workers}: expected 1-256")
    if c.workers > 1 and not c.brokered:
        raise ConfigError(f"--workers {c.workers} needs --broker redis: workers share topics, "
                          "sequence numbers and the epoch through the broker")
    if c.brokered and not c.redis_url.startswith(("redis://", "unix://")):
        raise ConfigError(f"--broker {c.broker} needs --redis-url redis://HOST:PORT/DB "
                          f"(got {c.redis_url!r})")
    if c.worker_index >= 0 and not c.brokered:
        raise ConfigError(f"{ENV_WORKER_INDEX} is set: only workers of --broker redis have one")
    if not c.brokered and (c.redis_url or c.worker_cpus):
        raise ConfigError("--redis-url and --worker-cpus go with --broker redis")


def inject_from_env(environ) -> InjectConfig:
    delay_text = environ.get(ENV_DELAY, "").strip() or "0"
    pad_text = environ.get(ENV_PAD, "").strip() or "0"
    cpu_text = environ.get(ENV_CPU, "").strip() or "0"
    try:
        delay = float(delay_text)
    except ValueError:
        raise ConfigError(f"{ENV_DELAY}={delay_text!r}: expected milliseconds (a number)") from None
    if not (math.isfinite(delay) and delay >= 0):
        raise ConfigError(f"{ENV_DELAY}={delay_text!r}: expected a non-negative number")
    if not pad_text.isdigit():
        raise ConfigError(f"{ENV_PAD}={pad_text!r}: expected a non-negative integer")
    pad = int(pad_text)
    if 0 < pad < MIN_PAD_BYTES:
        raise ConfigError(
            f"{ENV_PAD}={pad}: the pad field ,\"pad\":\"\" alone is {MIN_PAD_BYTES} bytes; "
            f"use 0 or at least {MIN_PAD_BYTES}"
        )
    if not (cpu_text.isascii() and cpu_text.isdigit()) or int(cpu_text) > MAX_CPU_US:
        raise ConfigError(f"{ENV_CPU}={cpu_text!r}: expected an integer 0-{MAX_CPU_US} (microseconds)")
    return InjectConfig(delay_ms=delay, pad_bytes=pad, cpu_us=int(cpu_text))
