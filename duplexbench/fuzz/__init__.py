"""``python -m duplexbench fuzz`` (``make fuzz``): hostile input at a running server.

Sends at least ``--per-transport`` malformed requests and frames per transport
(long polling, SSE, NDJSON, publish, WebSocket), grouped by area
(:mod:`duplexbench.fuzz.cases`), at a server on 127.0.0.1 -- one it starts, or
``--url`` -- while a good client is served on its own topic: a publisher POSTs
every 20 ms and a WebSocket and an SSE subscriber must receive every message,
in order, and stay open. Each input gets a fresh connection; its answer is
classified by HTTP status or WebSocket close code:

- ``ok``: 1xx-3xx, or a WebSocket that stayed open / closed normally (1000, 1001, or
  the code the client's own Close carried, echoed)
- ``4xx``: a 4xx status, or close 1002 / 1003 / 1007 / 1008 / 1009 (the peer's fault)
- ``5xx``: a 5xx status, or close 1011 (the server's fault)
- ``none``: no answer within ``--read-timeout`` (e.g. a request still waiting for its body)
  or the connection dropped without one

Crashes: the server process exited, ``/healthz`` stopped answering, or the
server logged a traceback. Exit status 1 on any 5xx, crash or lost message;
bounded in time (``--seconds``, default 50).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict

import aiohttp

from ..contract import decode_envelope
from ..contract.sse import SSEParser
from ..contract.websocket import parse_frame
from .cases import AREAS, TRANSPORTS, Case, generate
from .cases_tcp import classify_tcp_answer

__all__ = ["classify_answer", "run"]

GOOD_TOPIC = "fuzz-good"
OK_CLOSES = {1000, 1001}
CLIENT_FAULT_CLOSES = {1002, 1003, 1007, 1008, 1009}


async def run(url: str, args, server=None) -> bool:
    """Fuzz ``url``; print the table; True when something failed."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    started = time.monotonic()
    deadline = started + args.seconds - 8  # leave time to check the good client
    tcp_port = await _tcp_port(url)  # the plain-TCP listener's cases go to its own port
    lists = [generate(t, args.per_transport, args.seed) for t in TRANSPORTS
             if t != "tcp" or tcp_port]
    # Round robin over transports: if time runs out, every transport got its share.
    cases = [c for group in itertools.zip_longest(*lists) for c in group if c is not None]
    results: dict[tuple[str, str], Counter] = defaultdict(Counter)
    crashes: list[str] = []
    async with aiohttp.ClientSession() as session:
        good = GoodClient(url, session)
        await good.start()
        sem = asyncio.Semaphore(args.concurrency)

        async def one(case: Case) -> None:
            async with sem:
                if time.monotonic() > deadline:
                    return
                to = tcp_port if case.transport == "tcp" else int(port)
                outcome = await _send(host, to, case, args.read_timeout)
                results[(case.transport, case.area)][outcome] += 1

        for start in range(0, len(cases), 250):
            await asyncio.gather(*(one(c) for c in cases[start:start + 250]))
            crash = await _health(session, url, server)
            if crash:
                crashes.append(crash)
                break
            if time.monotonic() > deadline:
                break
        lost = await good.finish()
    if server is not None:
        crashes += [line for line in server.output if "Traceback" in line or "Error handling" in line]
    return _report(results, crashes, lost, good, args, time.monotonic() - started)


async def _send(host: str, port: int, case: Case, read_timeout: float) -> str:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, asyncio.TimeoutError):
        return "none"
    try:
        writer.write(case.data)
        await writer.drain()
        data = b""
        end = time.monotonic() + read_timeout
        while time.monotonic() < end:
            outcome = classify_tcp_answer(data) if case.transport == "tcp" else \
                classify_answer(data, case.websocket, echo=case.echo)
            if outcome is not None:
                return outcome
            try:
                chunk = await asyncio.wait_for(reader.read(65536), max(0.01, end - time.monotonic()))
            except asyncio.TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        outcome = classify_tcp_answer(data, final=True) if case.transport == "tcp" else \
            classify_answer(data, case.websocket, final=True, echo=case.echo)
        return outcome or "none"
    except (ConnectionError, OSError):
        return "none"
    finally:
        writer.transport.abort()


def classify_answer(data: bytes, websocket: bool, final: bool = False, echo: int = 0) -> str | None:
    """The outcome once enough bytes arrived; None = keep reading."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line = head.split(b"\r\n", 1)[0].split(b" ")
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    if status >= 500 or status == 0:
        return "5xx" if status else None
    if status >= 400:
        return "4xx"
    if not (websocket and status == 101):
        return "ok"
    offset = 0
    while (frame := parse_frame(rest[offset:])) is not None:
        opcode, _, payload, used = frame
        offset += used
        if opcode == 0x8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
            if code in OK_CLOSES or (echo and code == echo):
                return "ok"
            return "4xx" if code in CLIENT_FAULT_CLOSES else "5xx"
    return "ok" if final else None  # stayed open: valid frames, or a ping answered


async def _tcp_port(url: str) -> int | None:
    """/healthz ``tcp_port``: None when the server has no plain-TCP listener (tcp skipped)."""
    try:
        async with aiohttp.ClientSession() as session, session.get(
                url + "/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r:
            port = (await r.json()).get("tcp_port")
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, AttributeError):
        return None
    return port if isinstance(port, int) and port > 0 else None


async def _health(session: aiohttp.ClientSession, url: str, server) -> str:
    if server is not None and server.process.poll() is not None:
        return f"server exited with status {server.process.returncode}"
    try:
        async with session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r:
            return "" if r.status == 200 else f"/healthz answered {r.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return f"/healthz failed: {exc!r}"


class GoodClient:
    """A publisher every 20 ms and a WebSocket and an SSE subscriber on their own topic."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session
        self.published: list[int] = []
        self.got: dict[str, list[int]] = {"websocket": [], "sse": []}
        self.problems: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._stop = asyncio.Event()

    async def start(self) -> None:
        ws = await self.session.ws_connect(f"{self.url}/ws?topic={GOOD_TOPIC}")
        sse = await self.session.get(f"{self.url}/stream?topic={GOOD_TOPIC}",
                                     headers={"Accept": "text/event-stream"})
        self._tasks = [asyncio.create_task(self._ws(ws)), asyncio.create_task(self._sse(sse)),
                       asyncio.create_task(self._publish())]

    async def _publish(self) -> None:
        while not self._stop.is_set():
            try:
                async with self.session.post(f"{self.url}/publish?topic={GOOD_TOPIC}",
                                             data=f"good {len(self.published)}") as r:
                    self.published.append((await r.json())["seq"])
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                self.problems.append(f"publish failed: {exc!r}")
            await asyncio.sleep(0.02)

    async def _ws(self, ws) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.got["websocket"].append(decode_envelope(msg.data).seq)
        if not self._stop.is_set():
            self.problems.append(f"websocket closed by the server ({ws.close_code})")

    async def _sse(self, response) -> None:
        parser = SSEParser()
        async for chunk in response.content.iter_any():
            self.got["sse"] += [decode_envelope(e.data).seq for e in parser.feed(chunk) if e.data]
        if not self._stop.is_set():
            self.problems.append("SSE stream ended by the server")

    async def finish(self) -> int:
        """Stop publishing, wait for the subscribers; messages lost (or out of order)."""
        self._stop.set()
        await self._tasks[2]
        expected = list(range(1, len(self.published) + 1)) if self.published else []
        for _ in range(250):
            if all(got == expected for got in self.got.values()):
                break
            await asyncio.sleep(0.02)
        for task in self._tasks[:2]:
            task.cancel()
        await asyncio.gather(*self._tasks[:2], return_exceptions=True)
        lost = 0
        for name, got in self.got.items():
            if got != expected:
                lost += len(set(expected) - set(got))
                self.problems.append(f"{name}: got {len(got)} of {len(expected)} messages"
                                     + ("" if set(got) >= set(expected) else "") + " (or out of order)")
        return lost + (1 if self.problems and not lost else 0)


def _report(results, crashes, lost, good: GoodClient, args, elapsed: float) -> bool:
    cols = ("ok", "4xx", "5xx", "none")
    print(f"{'transport':<10} {'area':<8} {'inputs':>6} " + " ".join(f"{c:>5}" for c in cols))
    totals: Counter = Counter()
    per_transport: Counter = Counter()
    for transport in TRANSPORTS:
        for area in AREAS:
            counts = results.get((transport, area))
            if not counts:
                continue
            n = sum(counts.values())
            per_transport[transport] += n
            totals.update(counts)
            print(f"{transport:<10} {area:<8} {n:>6} " + " ".join(f"{counts[c]:>5}" for c in cols))
    inputs = sum(totals.values())
    print(f"{'total':<19} {inputs:>6} " + " ".join(f"{totals[c]:>5}" for c in cols))
    short = [t for t in TRANSPORTS if per_transport[t] < args.per_transport]
    print(f"inputs: {inputs} in {elapsed:.1f} s; 4xx: {totals['4xx']}; 5xx: {totals['5xx']}; "
          f"crashes: {len(crashes)}")
    if short:
        print(f"time budget ran out: fewer than {args.per_transport} inputs for {', '.join(short)}")
    for crash in crashes[:5]:
        print(f"crash: {crash}")
    sent = len(good.published)
    verdict = "got everything" if not lost and not good.problems else "LOST MESSAGES"
    print(f"good client: {sent} published; websocket {len(good.got['websocket'])}, "
          f"sse {len(good.got['sse'])} received: {verdict}")
    for problem in good.problems[:5]:
        print(f"good client: {problem}")
    failed = bool(totals["5xx"] or crashes or lost or good.problems)
    print("FAIL" if failed else "PASS")
    return failed
