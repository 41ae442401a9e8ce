"""How many TCP connections Chromium holds to the origin, counted from outside the browser.

A page cannot see its connections, and the connection limit is about exactly them:
Chromium opens at most six HTTP/1.1 connections per origin, and one HTTP/2 connection
carries every request of the origin. So the engine counts them the way ``ss`` would: the
TCP sockets of its descendant processes (Playwright's driver and every Chromium process
under it) that are established to the origin's address, sampled while the point runs.
The largest count seen is what the page held at its busiest.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import psutil

__all__ = ["OriginConnections"]


class OriginConnections:
    """Samples the established TCP connections from this process's descendants to one
    address (``url``'s host and port); ``max`` is the most seen in one sample."""

    def __init__(self, url: str, root_pid: int | None = None) -> None:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        host = parts.hostname or "127.0.0.1"
        # The sockets' remote address is numeric: resolve a name once (loopback only here).
        self.address = (socket.gethostbyname(host), port)
        self.root = psutil.Process(root_pid or os.getpid())
        self.max = 0
        self.samples = 0

    def count(self) -> int:
        """Established connections to the address now, from the descendants' sockets."""
        local_ends = set()  # by local address: a socket passed between processes counts once
        for process in self.root.children(recursive=True):
            try:
                sockets = process.net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue  # a renderer that just ended, or not ours to read
            local_ends.update(tuple(c.laddr) for c in sockets
                              if c.status == psutil.CONN_ESTABLISHED and c.raddr
                              and (c.raddr.ip, c.raddr.port) == self.address)
        return len(local_ends)

    def sample(self) -> int:
        now = self.count()
        self.samples += 1
        self.max = max(self.max, now)
        return now
