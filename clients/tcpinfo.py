"""Bytes and segments as the kernel counts them: Linux ``TCP_INFO`` per socket.

Why the kernel: counting in the client (every ``write`` / ``data_received``)
ties the engine to clients whose I/O we own, and misses what TCP itself
sends (pure ACKs, handshakes). ``getsockopt(IPPROTO_TCP, TCP_INFO)`` gives,
per socket, the payload bytes the peer acknowledged (``tcpi_bytes_acked``),
payload bytes received (``tcpi_bytes_received``) and segments sent and
received (``tcpi_segs_out`` / ``tcpi_segs_in``, pure ACKs and handshake
segments included), so any client library can be used and the counts are
read at the window edges only: no per-message cost.

Offsets are those of ``struct tcp_info`` in linux/tcp.h (stable ABI; the
struct only grows at its end): 8 bytes of u8 fields, 24 u32 fields
(8..104), then u64 ``pacing_rate`` (104), ``max_pacing_rate`` (112),
``bytes_acked`` (120), ``bytes_received`` (128), u32 ``segs_out`` (136),
``segs_in`` (140). Kernels before 4.2 return a shorter struct: the read
gives None and the caller says the counts are unavailable.

:class:`TcpTally` keeps the sockets of one role ("sub", "pub") and the
final counts of sockets already closed, so a window over connections that
come and go (long polling with ``Connection: close``) still adds up.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["FIELDS", "IP_HEADER_BYTES", "TcpCounts", "TcpTally", "as_dict", "diff", "read_tcp_info"]

FIELDS = ("bytes_acked", "bytes_received", "segs_out", "segs_in")
_TCP_INFO = getattr(socket, "TCP_INFO", 11)
_STRUCT = struct.Struct("<QQII")
_OFFSET = 120
_NEED = _OFFSET + _STRUCT.size  # 144 bytes
#: Per segment: IPv4 header 20 + TCP header 20 + timestamp option 12 (Linux
#: enables RFC 7323 timestamps by default, and loopback carries no IP options).
IP_HEADER_BYTES = 52

TcpCounts = tuple[int, int, int, int]
_ZERO: TcpCounts = (0, 0, 0, 0)


def read_tcp_info(sock) -> TcpCounts | None:
    """(bytes_acked, bytes_received, segs_out, segs_in) of ``sock``, or None.

    ``sock`` is anything with ``getsockopt`` (a socket, uvloop's pseudo-socket)
    or a file descriptor number.
    """
    try:
        if isinstance(sock, int):
            sock = socket.socket(fileno=sock)
            try:
                raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 256)
            finally:
                sock.detach()
        else:
            raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 256)
    except (OSError, AttributeError, ValueError):
        return None
    if len(raw) < _NEED:
        return None
    return _STRUCT.unpack_from(raw, _OFFSET)


def _add(a: TcpCounts, b: TcpCounts) -> TcpCounts:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


class TcpTally:
    """The TCP_INFO counts of a set of sockets that may close at any time.

    ``add(sock)`` when a connection opens, ``retire(sock)`` just before it
    closes (its last counts move into ``closed``); :meth:`total` is closed
    plus live, cumulative since each socket opened, so a window is the
    difference of two totals.
    """

    def __init__(self) -> None:
        self.live: dict[int, object] = {}
        self.closed: TcpCounts = _ZERO
        self.unreadable = 0  # sockets whose counts could not be read

    def add(self, sock) -> None:
        if sock is not None:
            self.live[id(sock)] = sock

    def retire(self, sock) -> None:
        if sock is None or self.live.pop(id(sock), None) is None:
            return
        counts = read_tcp_info(sock)
        if counts is None:
            self.unreadable += 1
        else:
            self.closed = _add(self.closed, counts)

    def total(self) -> TcpCounts:
        total = self.closed
        for sock in list(self.live.values()):
            counts = read_tcp_info(sock)
            if counts is None:
                self.unreadable += 1
            else:
                total = _add(total, counts)
        return total


def as_dict(counts: TcpCounts) -> dict[str, int]:
    return dict(zip(FIELDS, counts))


def diff(end: TcpCounts, start: TcpCounts) -> TcpCounts:
    return (end[0] - start[0], end[1] - start[1], end[2] - start[2], end[3] - start[3])
