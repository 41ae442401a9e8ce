"""DUPLEXBENCH_INJECT_DELAY_MS, applied: pace deliveries so each message is late by N ms.

A plain ``sleep(N)`` per write would delay a message that arrives during the
sleep by up to 2N (it waits out the current sleep, then its own). Instead each
message becomes due ``N`` ms after it was published (``Message.published_at``)
and a write carries every message already due, with one sleep per write, not
per message: each delivery is ~N ms late and throughput is kept. (The pad
injection happens once per message in the hub, where the envelope is encoded.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .hub import Message

__all__ = ["paced"]


async def paced(batch: list[Message], delay_s: float) -> AsyncIterator[list[Message]]:
    """Split ``batch`` into the runs due together, sleeping until each is due."""
    loop = asyncio.get_running_loop()
    i, n = 0, len(batch)
    while i < n:
        wait = batch[i].published_at + delay_s - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        now = loop.time()
        j = i + 1
        while j < n and batch[j].published_at + delay_s <= now:
            j += 1
        yield batch[i:j]
        i = j
