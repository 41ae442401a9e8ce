"""The probe's machinery: rules as data, a context that talks to the server, a runner.

A rule is a small async function registered with :func:`rule` under an id
(``group.name``), the transport it needs (``""`` = always mounted) and, when
it needs to know something about the server the wire cannot tell (its
heartbeat, its retention, an origin it allows), the option it needs. A rule
passes by returning, fails by raising :class:`Fail` (what was expected, what
came back) and skips by raising :class:`Skip`. Every rule runs under its own
time limit on its own topic, so rules are independent and the whole probe is
bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Awaitable, Callable

from .wire import BodyReader, Conn, Head, Response, Target, TcpConn, WireError, WSConn, ws_key

__all__ = [
    "Ctx", "Fail", "Options", "ProbeReport", "Result", "Rule", "RULES", "Skip",
    "check", "rule", "run_rules", "soon",
]

TRANSPORTS = ("longpoll", "stream", "websocket", "tcp")
MOUNT_PATHS = {"longpoll": "/poll", "stream": "/stream", "websocket": "/ws"}
#: What says a transport is mounted (HTTP ones: not 404; tcp: /healthz names its port).
MOUNT_WHERE = {**MOUNT_PATHS, "tcp": "/healthz tcp_port"}
EPOCH_RE = re.compile(r"[a-z0-9]{1,16}")


class Fail(Exception):
    def __init__(self, what: str, expected: object = "", got: object = "") -> None:
        super().__init__(what)
        self.what, self.expected, self.got = what, expected, got


class Skip(Exception):
    pass


def check(condition: bool, what: str, expected: object, got: object) -> None:
    if not condition:
        raise Fail(what, expected, got)


@dataclass(frozen=True)
class Rule:
    id: str
    text: str
    fn: Callable[["Ctx"], Awaitable[None]]
    transport: str = ""  # "" = needs only the always-mounted endpoints
    needs: str = ""  # an Options field that must be set, else the rule is skipped
    timeout_s: float | None = None


#: Every rule, in the order they are printed.
RULES: list[Rule] = []


def rule(rule_id: str, text: str, transport: str = "", needs: str = "",
         timeout_s: float | None = None):
    def register(fn):
        if any(r.id == rule_id for r in RULES):
            raise ValueError(f"duplicate probe rule id {rule_id}")
        RULES.append(Rule(rule_id, text, fn, transport, needs, timeout_s))
        return fn
    return register


@dataclass
class Options:
    url: str
    ca_file: str = ""
    transports: tuple[str, ...] = ()  # only probe these (empty = every mounted one)
    heartbeat_s: float | None = None  # the server's --heartbeat; None = heartbeat rules skip
    retention: int | None = None  # the server's --retention; None = retention rules skip
    allowed_origin: str = ""  # an origin the server allows ("*" = it allows any)
    max_payload: int = 1024 * 1024
    rule_timeout_s: float = 5.0
    only: tuple[str, ...] = ()  # id patterns (fnmatch)
    skip: tuple[str, ...] = ()
    concurrency: int = 4
    h2: str = ""  # HTTP/2 rules: "" = not asked, "auto" = where the server offers h2, "on" = required
    h2c_url: str = ""  # the server's cleartext HTTP/2 (prior knowledge) URL, where it has one


@dataclass
class Result:
    rule: Rule
    status: str  # pass | fail | skip
    detail: str = ""
    expected: str = ""
    got: str = ""
    elapsed_s: float = 0.0

    def as_json(self) -> dict:
        return {"id": self.rule.id, "transport": self.rule.transport or "any",
                "status": self.status, "rule": self.rule.text, "detail": self.detail,
                "expected": self.expected, "got": self.got, "elapsed_s": round(self.elapsed_s, 3)}


@dataclass
class ProbeReport:
    url: str
    epoch: str | None
    mounted: tuple[str, ...]
    results: list[Result] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "skip": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def as_json(self) -> dict:
        return {"url": self.url, "epoch": self.epoch, "mounted": list(self.mounted),
                "ok": self.ok, "counts": self.counts(), "elapsed_s": round(self.elapsed_s, 2),
                "results": [r.as_json() for r in self.results]}


def short(value: object, limit: int = 160) -> str:
    text = value if isinstance(value, str) else "(none)" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Ctx:
    """What a rule may use: the server, its epoch, fresh topics, request helpers."""

    def __init__(self, target: Target, options: Options, epoch: str | None,
                 mounted: tuple[str, ...], tcp_port: int | None = None) -> None:
        self.target = target
        self.options = options
        self.epoch = epoch
        self.mounted = mounted
        self.tcp_port = tcp_port  # the plain-TCP listener's (/healthz tcp_port), if any
        self._conns: list[Conn] = []
        self._run = os.urandom(3).hex()
        self._count = 0

    # -- topics and epochs --------------------------------------------------
    def topic(self, tag: str = "t") -> str:
        self._count += 1
        return f"probe-{self._run}-{tag}-{self._count}"[:64]

    def need_epoch(self) -> str:
        if not self.epoch:
            raise Fail("GET /healthz has an epoch", '"epoch": "[a-z0-9]{1,16}"', "none")
        return self.epoch

    def other_epoch(self) -> str:
        epoch = self.epoch or ""
        return "zz9probe" if epoch != "zz9probe" else "yy8probe"

    # -- plain requests -----------------------------------------------------
    async def connect(self) -> Conn:
        conn = await Conn.open(self.target)
        self._conns.append(conn)
        return conn

    async def request(self, method: str, path: str, headers: dict | list | None = None,
                      body: bytes = b"") -> Response:
        conn = await self.connect()
        conn.send(method, path, headers, body)
        head = await conn.head()
        data = await conn.body_reader(head, method).read_all()
        conn.close()
        return Response(head.status, head.reason, head.headers, head.elapsed_s, data)

    async def open(self, path: str, headers: dict | list | None = None) -> tuple[Conn, Head, BodyReader]:
        """A GET whose body is read as it comes (streams)."""
        conn = await self.connect()
        conn.send("GET", path, headers, keep_alive=True)
        head = await conn.head()
        return conn, head, conn.body_reader(head)

    async def publish(self, topic: str, data: str = "x", ts: int | None = None,
                      headers: dict | None = None) -> int:
        query = f"/publish?topic={topic}" + (f"&ts={ts}" if ts is not None else "")
        resp = await self.request("POST", query, headers, data.encode())
        check(resp.status == 200, f"POST {query} answers 200", 200, f"{resp.status} {short(resp.body)}")
        obj = parse_json(resp.body, "publish answer")
        check(isinstance(obj, dict) and isinstance(obj.get("seq"), int),
              "publish answers {\"seq\": N}", '{"seq": N}', short(resp.body))
        return obj["seq"]

    async def publish_many(self, topic: str, count: int, data: str = "m") -> int:
        seq = 0
        for i in range(count):
            seq = await self.publish(topic, f"{data}{i}")
        return seq

    # -- plain TCP ----------------------------------------------------------
    async def tcp(self, first: bytes = b"") -> TcpConn:
        """A connection to the TCP listener; ``first`` (a subscribe line) is sent at once."""
        if not self.tcp_port:
            raise Fail("GET /healthz names the TCP listener", '"tcp_port": N', "none")
        conn = await TcpConn.open_tcp(self.target, self.tcp_port)
        self._conns.append(conn)
        if first:
            conn.send_raw(first)
        return conn

    # -- WebSocket ----------------------------------------------------------
    def ws_headers(self, key: str | None = None, **extra: str) -> dict:
        headers = {"Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Key": key or ws_key(), "Sec-WebSocket-Version": "13"}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    async def ws(self, query: str, headers: dict | None = None) -> tuple[Head, WSConn | None, Conn]:
        conn = await self.connect()
        conn.send("GET", "/ws?" + query, headers or self.ws_headers(), keep_alive=True)
        head = await conn.head()
        return head, (WSConn(conn) if head.status == 101 else None), conn

    async def ws_open(self, query: str) -> WSConn:
        head, ws, conn = await self.ws(query)
        if ws is None:
            body = await conn.body_reader(head).read_all()
            raise Fail(f"GET /ws?{query} upgrades", 101, f"{head.status} {short(body)}")
        return ws

    def close_all(self) -> None:
        for conn in self._conns:
            try:
                conn.writer.transport.abort()
            except Exception:  # already closed: nothing to release
                pass
        self._conns.clear()


#: Retained messages are sent at once: waiting longer than this for them is a failure.
RETAINED_WAIT_S = 2.0


async def soon(awaitable, what: str, seconds: float = RETAINED_WAIT_S):
    """``await awaitable``, or fail saying nothing came (instead of the rule's whole time limit)."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except (TimeoutError, asyncio.TimeoutError):
        raise Fail(what, f"an answer within {seconds:g} s", "nothing") from None


def parse_json(body: bytes | str, what: str):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Fail(f"{what} is JSON", "JSON", short(body)) from None


def expect_error(resp: Response, status: int | tuple[int, ...], what: str) -> dict:
    """A 4xx answer with a JSON ``{"error": "..."}`` body."""
    wanted = status if isinstance(status, tuple) else (status,)
    check(resp.status in wanted, what, " or ".join(map(str, wanted)), f"{resp.status} {short(resp.body)}")
    obj = parse_json(resp.body, f"{what}: the error body")
    check(isinstance(obj, dict) and isinstance(obj.get("error"), str),
          f"{what}: body is {{\"error\": \"reason\", ...}}", '{"error": "..."}', short(resp.body))
    return obj


async def _discover(target: Target, options: Options) -> tuple[str | None, tuple[str, ...], int | None]:
    ctx = Ctx(target, options, None, ())
    try:
        health = await ctx.request("GET", "/healthz")
        epoch = tcp_port = None
        if health.status == 200:
            try:
                obj = json.loads(health.body)
                value = obj.get("epoch") if isinstance(obj, dict) else None
                epoch = value if isinstance(value, str) and EPOCH_RE.fullmatch(value) else None
                port = obj.get("tcp_port") if isinstance(obj, dict) else None
                if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                    tcp_port = port
            except ValueError:
                pass
        mounted = []
        for transport, path in MOUNT_PATHS.items():
            if options.transports and transport not in options.transports:
                continue
            conn = await ctx.connect()
            conn.send("GET", f"{path}?topic=probe-mount&cursor=0&timeout=0")
            head = await asyncio.wait_for(conn.head(), options.rule_timeout_s)
            conn.close()
            if head.status != 404:
                mounted.append(transport)
        if tcp_port is not None and (not options.transports or "tcp" in options.transports):
            mounted.append("tcp")
        return epoch, tuple(mounted), tcp_port
    finally:
        ctx.close_all()


async def _run_one(r: Rule, target: Target, options: Options, epoch, mounted, sem,
                   tcp_port: int | None = None) -> Result:
    if r.transport and r.transport not in mounted:
        why = "not selected" if options.transports and r.transport not in options.transports \
            else f"{MOUNT_WHERE[r.transport]} not mounted" + (" (404)" if r.transport in MOUNT_PATHS else "")
        return Result(r, "skip", f"{r.transport}: {why}")
    if r.needs and getattr(options, r.needs) in (None, ""):
        flag = "--" + r.needs.replace("_s", "").replace("_", "-")
        return Result(r, "skip", f"needs {flag} (what the server was started with)")
    async with sem:
        ctx = Ctx(target, options, epoch, mounted, tcp_port)
        started = time.monotonic()
        limit = r.timeout_s or options.rule_timeout_s
        try:
            async with asyncio.timeout(limit):
                await r.fn(ctx)
            result = Result(r, "pass")
        except Fail as exc:
            result = Result(r, "fail", exc.what, short(exc.expected) or "(nothing)",
                            short(exc.got) or "(nothing)")
        except Skip as exc:
            result = Result(r, "skip", str(exc))
        except (TimeoutError, asyncio.TimeoutError):
            result = Result(r, "fail", f"no complete answer within {limit:g} s", "an answer", "timeout")
        except (WireError, ConnectionError, ssl.SSLError, OSError) as exc:
            result = Result(r, "fail", "the exchange completes", "a complete answer",
                            f"{type(exc).__name__}: {short(str(exc))}")
        finally:
            ctx.close_all()
        result.elapsed_s = time.monotonic() - started
        return result


def select(rules: list[Rule], options: Options) -> list[Rule]:
    chosen = []
    for r in rules:
        if options.only and not any(fnmatch(r.id, p) for p in options.only):
            continue
        if any(fnmatch(r.id, p) for p in options.skip):
            continue
        chosen.append(r)
    return chosen


async def run_rules(options: Options, rules: list[Rule] | None = None) -> ProbeReport:
    """Discover the server (epoch, mounted transports), then run every selected rule."""
    target = Target.parse(options.url, options.ca_file)
    started = time.monotonic()
    epoch, mounted, tcp_port = await _discover(target, options)
    sem = asyncio.Semaphore(max(1, options.concurrency))
    chosen = select(RULES if rules is None else rules, options)
    results = await asyncio.gather(*[_run_one(r, target, options, epoch, mounted, sem, tcp_port)
                                     for r in chosen])
    return ProbeReport(options.url, epoch, mounted, list(results), time.monotonic() - started)
