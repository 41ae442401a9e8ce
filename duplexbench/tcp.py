"""TCP_NODELAY on every socket duplexbench opens (clients, proxy, calibration).

Nagle's algorithm with delayed ACKs holds small messages back by up to tens of
milliseconds, which would be measured as "transport latency". asyncio and
uvloop already set it for TCP; setting it explicitly and reading it back lets
a run record that it was really on.
"""

from __future__ import annotations

import asyncio
import socket

__all__ = ["set_nodelay"]


def set_nodelay(transport: asyncio.BaseTransport) -> bool:
    """Turn Nagle off for ``transport``'s socket; return whether it is now off."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except (OSError, AttributeError):
        return False
