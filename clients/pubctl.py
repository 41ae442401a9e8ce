"""The conductor's end of the publisher process, and in-loop open-loop sending.

:class:`PublisherProcess` starts ``python -m clients.pubproc`` (pinned to
``publisher_cpu`` when set) and talks to it in JSON lines over its stdin /
stdout (see clients/pubproc.py for the protocol). :func:`send_due` is the
in-loop sender used only when messages go up the subscribers' own sockets
(WebSocket echo / chat with ``upstream = transport``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import numpy as np

from .base import ClientError
from .spec import LoadSpec

__all__ = ["PUBLISHER_SLACK_S", "PublisherProcess", "send_due", "sleep_until"]

#: How long the publisher process may take to answer beyond its schedule.
PUBLISHER_SLACK_S = 30.0


class PublisherProcess:
    """The parent's end of clients.pubproc: JSON lines over its stdin / stdout."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.dir = Path(tempfile.mkdtemp(prefix="duplexbench-pub-"))
        self.npz = self.dir / "published.npz"
        self.proc: asyncio.subprocess.Process | None = None
        self.tcp_window: list[int] | None = None
        self.sched: str | None = None  # the publisher's scheduling (pubproc._priority)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        spec_path = self.dir / "spec.json"
        spec_path.write_text(self.spec.to_json())
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clients.pubproc", str(spec_path), str(self.npz),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,  # "warmup_done" holds one count per topic (echo: per client)
        )
        if self.spec.publisher_cpu is not None and hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(self.proc.pid, {self.spec.publisher_cpu})
            except OSError as exc:
                raise ClientError(f"publisher_cpu {self.spec.publisher_cpu}: cannot pin ({exc})") from None
        self.sched = (await self.expect("ready", 30.0)).get("sched")

    async def start_beside(self, other: Awaitable[None]) -> None:
        """:meth:`start` while ``other`` runs; either's failure raises (``other``'s first),
        once the start has settled, so :meth:`close` finds the process either way."""
        starting = asyncio.ensure_future(self.start())
        try:
            await other
        except BaseException:
            await asyncio.wait({starting})
            if not starting.cancelled():
                starting.exception()  # retrieved: the other's error is the one reported
            raise
        await starting

    def tell(self, **command) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())

    async def expect(self, event: str, timeout: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            raise ClientError(f"publisher process: no {event!r} within {timeout:.0f} s") from None
        if not line:
            code = await self.proc.wait()
            raise ClientError(f"publisher process exited ({code}) before {event!r}; see stderr")
        message = json.loads(line)
        if message.get("event") == "failed":
            raise ClientError(message["message"])
        if message.get("event") != event:
            raise ClientError(f"publisher process: expected {event!r}, got {message}")
        return message

    def published(self) -> dict[str, np.ndarray]:
        with np.load(self.npz) as data:
            return {name: data[name] for name in ("sent_ns", "ok", "seq")}

    async def stop(self, timeout: float = 5.0) -> dict | None:
        """Stop sending now (SIGUSR1); returns its ``sent`` event (None: it is gone)."""
        if self.proc is None or self.proc.returncode is not None:
            return None
        try:
            self.proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert self.proc.stdout is not None
                line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
                if not line:
                    return None
                message = json.loads(line)
                if message.get("event") == "sent":
                    return message
        except (ProcessLookupError, asyncio.TimeoutError, ValueError):
            pass
        return None

    async def finish(self) -> None:
        """After the drain: its TCP window, then it exits."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.tell(cmd="end")
            done = await self.expect("done", 10.0)
            self.tcp_window = done["tcp"]
        except (ClientError, OSError, ConnectionError):
            pass

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.terminate()
                await asyncio.wait_for(self.proc.wait(), 3.0)
            except (ProcessLookupError, asyncio.TimeoutError):
                try:
                    self.proc.kill()
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


async def send_due(send, offsets: list[int], lo: int, hi: int, base_ns: int) -> None:
    """Open loop: message i (lo <= i < hi) goes out once ``base_ns + offsets[i]`` is due."""
    monotonic_ns, sleep = time.monotonic_ns, asyncio.sleep
    i = lo
    while i < hi:
        now = monotonic_ns()
        due = base_ns + offsets[i]
        if due > now:
            await sleep((due - now) / 1e9)
            continue
        # Everything due by now goes out at once (open loop: no waiting on answers).
        while i < hi and base_ns + offsets[i] <= now:
            send(i)
            i += 1


async def sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - time.monotonic_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)
