"""Byte-level HTTP/1.1 and WebSocket client for the probe: raw sockets, nothing hidden.

The probe must see exactly what a server sends (when the response head
arrives, the first bytes of a stream, a Close frame's code), and must be able
to send what no well-behaved client library would (a bad ``Sec-WebSocket-Key``,
a malformed request line, an empty ``Last-Event-ID``). So
this is a small client over ``asyncio`` streams: one request per connection,
``Connection: close`` unless the caller streams, chunked bodies decoded
incrementally, WebSocket frames from :mod:`duplexbench.contract.websocket`,
and plain-TCP lines (:class:`TcpConn`, :mod:`duplexbench.contract.tcp`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..contract.websocket import OP_CLOSE, encode_frame, parse_frame

__all__ = ["BodyReader", "Conn", "Head", "Response", "Target", "TcpConn", "WSConn", "WireError", "ws_key"]

#: A response head larger than this is not an answer the probe understands.
MAX_HEAD = 64 * 1024


class WireError(Exception):
    """The peer broke HTTP or WebSocket framing, or went away too early."""


@dataclass(frozen=True)
class Target:
    """Where the server is: ``http(s)://host:port`` and how to verify its TLS certificate."""

    scheme: str
    host: str
    port: int
    ssl: ssl.SSLContext | None = None

    @classmethod
    def parse(cls, url: str, ca_file: str = "") -> "Target":
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http://HOST:PORT or https://HOST:PORT, got {url!r}")
        if parts.path not in ("", "/"):
            raise ValueError(f"the server URL must not have a path: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        context = None
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=ca_file or None)
        return cls(parts.scheme, parts.hostname, port, context)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.authority}"


@dataclass
class Head:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    elapsed_s: float = 0.0

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


@dataclass
class Response(Head):
    body: bytes = b""
    extra: dict = field(default_factory=dict)


class Conn:
    """One TCP (or TLS) connection carrying one request."""

    def __init__(self, target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.target = target
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.started = time.monotonic()

    @classmethod
    async def open(cls, target: Target) -> "Conn":
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=target.ssl,
            server_hostname=target.host if target.ssl else None, limit=1 << 22,
        )
        return cls(target, reader, writer)

    def send_raw(self, data: bytes) -> None:
        self.started = time.monotonic()
        self.writer.write(data)

    def send(self, method: str, path: str, headers: dict | list | None = None,
             body: bytes = b"", keep_alive: bool = False) -> None:
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in items}
        if "host" not in names:
            items.insert(0, ("Host", self.target.authority))
        if body or method == "POST":
            items.append(("Content-Length", str(len(body))))
        if not keep_alive and "connection" not in names:
            items.append(("Connection", "close"))
        lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in items]
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    async def _more(self) -> bytes:
        data = await self.reader.read(65536)
        if not data:
            raise WireError("connection closed by the server")
        return data

    async def head(self) -> Head:
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD:
                raise WireError("response head over 64 KiB")
            try:
                self.buffer += await self._more()
            except WireError:
                raise WireError(f"connection closed before a response head (got {self.buffer[:80]!r})")
        raw, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise WireError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise WireError(f"bad header line {line[:80]!r}")
            headers.append((name.strip().lower(), value.strip()))
        reason = parts[2] if len(parts) > 2 else ""
        return Head(int(parts[1]), reason, headers, time.monotonic() - self.started)

    def body_reader(self, head: Head, method: str = "GET") -> "BodyReader":
        return BodyReader(self, head, method)

    async def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += await self._more()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    async def read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD:
                raise WireError("chunk size line too long")
            self.buffer += await self._more()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def close(self) -> None:
        self.writer.close()

    async def closed_by_peer(self, timeout: float) -> bool:
        """True if the server closes the connection within ``timeout`` (bytes are dropped)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return True
        except (TimeoutError, asyncio.TimeoutError):
            return False
        except (ConnectionError, ssl.SSLError):
            return True


class BodyReader:
    """A response body as it arrives: Content-Length, chunked, or until the socket closes."""

    def __init__(self, conn: Conn, head: Head, method: str) -> None:
        self.conn = conn
        te = (head.get("transfer-encoding") or "").lower()
        self.chunked = "chunked" in te
        length = head.get("content-length")
        no_body = method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200
        self.remaining = 0 if no_body else (int(length) if length and length.isdigit() else None)
        self.done = no_body or self.remaining == 0 and not self.chunked
        self._chunk_left = 0
        self.pending = b""  # read by take() but not yet handed out

    async def take(self, sep: bytes) -> bytes:
        """Body bytes up to and including the next ``sep``; the rest waits for the next call."""
        while sep not in self.pending:
            piece = await self.read()
            if not piece:
                raise WireError(f"body ended before {sep!r} (got {self.pending[:80]!r})")
            self.pending += piece
        end = self.pending.index(sep) + len(sep)
        out, self.pending = self.pending[:end], self.pending[end:]
        return out

    async def read(self) -> bytes:
        """Next piece of body (may be short); b"" at the end of the body."""
        if self.done:
            return b""
        conn = self.conn
        if self.chunked:
            if self._chunk_left == 0:
                size_line = await conn.read_line()
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise WireError(f"bad chunk size line {size_line[:40]!r}") from None
                if size == 0:
                    while await conn.read_line():  # trailers up to the blank line
                        pass
                    self.done = True
                    return b""
                self._chunk_left = size
            if not conn.buffer:
                conn.buffer += await conn._more()
            data = conn.buffer[: self._chunk_left]
            conn.buffer = conn.buffer[len(data):]
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                if await conn.read_exact(2) != b"\r\n":
                    raise WireError("chunk not followed by CRLF")
            return data
        if self.remaining is not None:
            if not conn.buffer:
                conn.buffer += await conn._more()
            data = conn.buffer[: self.remaining]
            conn.buffer = conn.buffer[len(data):]
            self.remaining -= len(data)
            self.done = self.remaining == 0
            return data
        if not conn.buffer:
            try:
                conn.buffer += await conn._more()
            except WireError:
                self.done = True
                return b""
        data, conn.buffer = conn.buffer, b""
        return data

    async def read_all(self) -> bytes:
        parts = []
        while piece := await self.read():
            parts.append(piece)
        return b"".join(parts)



class TcpConn(Conn):
    """A connection to the plain-TCP listener (``port``, TLS when the target is https):
    raw bytes out, ``\n``-terminated lines in."""

    @classmethod
    async def open_tcp(cls, target: Target, port: int) -> "TcpConn":
        reader, writer = await asyncio.open_connection(
            target.host, port, ssl=target.ssl,
            server_hostname=target.host if target.ssl else None, limit=1 << 22,
        )
        return cls(target, reader, writer)

    async def tcp_line(self) -> bytes:
        """The next line, with its ``\n`` (blank ones too)."""
        while b"\n" not in self.buffer:
            try:
                self.buffer += await self._more()
            except WireError:
                raise WireError(f"connection closed before a complete line (got {self.buffer[:80]!r})")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    async def until_closed(self, timeout: float) -> tuple[bytes, bool]:
        """(everything until the server closes, whether it did within ``timeout``)."""
        data, self.buffer = self.buffer, b""
        try:
            async with asyncio.timeout(timeout):
                while chunk := await self.reader.read(65536):
                    data += chunk
            return data, True
        except (TimeoutError, asyncio.TimeoutError):
            return data, False
        except (ConnectionError, ssl.SSLError):
            return data, True


def ws_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


class WSConn:
    """The client side of an upgraded connection: masked frames out, frames in."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.conn.writer.write(encode_frame(opcode, payload, mask=os.urandom(4), fin=fin))

    async def recv(self) -> tuple[int, bool, bytes, bool]:
        """(opcode, fin, payload, masked) of the next frame."""
        conn = self.conn
        while True:
            parsed = parse_frame(conn.buffer)
            if parsed is not None:
                masked = len(conn.buffer) > 1 and bool(conn.buffer[1] & 0x80)
                opcode, fin, payload, used = parsed
                conn.buffer = conn.buffer[used:]
                return opcode, fin, payload, masked
            conn.buffer += await conn._more()

    async def recv_close(self) -> tuple[int | None, bytes]:
        """Skip data frames until a Close: (its status code or None, reason)."""
        while True:
            opcode, _, payload, _ = await self.recv()
            if opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                return code, payload[2:]
