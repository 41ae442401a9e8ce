"""One load point: one transport at one load, one repeat (what a scenario's sweep expands to)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LoadPoint"]


@dataclass(frozen=True)
class LoadPoint:
    """One measurement: one transport at one load, one repeat."""

    index: int          # position in Scenario.points(); the `point` column
    repeat: int         # 0-based
    transport: str
    clients: int
    rate: float
    payload_bytes: int
    delay_ms: float = 0.0
    keepalive: bool = True
    #: Intermediary between subscribers and server (duplexbench/proxies): none | nginx.
    proxy: str = "none"
    proxy_buffering: bool | None = None  # nginx proxy_buffering; None when direct
    accel_header: bool = True            # the server sends X-Accel-Buffering: no on streams
    proxy_gzip: bool = False             # nginx compresses HTTP responses (Accept-Encoding)
    #: Load generator for this point; "" = the command line's (--engine).
    engine: str = ""
    fault: str = ""     # a [faults] kind, "" = none
    tls: bool = False
    #: Server processes behind one port and what they fan out through ([server] workers,
    #: broker; duplexbench/broker/extension.py): 1 and "none" = the one-process server.
    workers: int = 1
    broker: str = "none"
    #: fanout | echo | chat; "" = the scenario's (points built in code).
    pattern: str = ""
    #: HTTP version of subscribers and publisher (docs/http2.md): "1.1" or "2".
    http: str = "1.1"
    #: Subscriptions multiplexed on one HTTP/2 connection (1 under HTTP/1.1).
    streams_per_connection: int = 1
    #: The server's implementation: "python" (aiohttp, servers/) or "node" (servers/node/).
    stack: str = "python"

    @property
    def brokered(self) -> bool:
        """True when the server's hub lives in a broker (its workers are processes of their own)."""
        return self.broker != "none"

    @property
    def label(self) -> str:
        """Short human label, e.g. ``websocket c=100 r=200/s p=64B``."""
        text = f"{self.transport} c={self.clients} r={self.rate:g}/s p={self.payload_bytes}B"
        if self.pattern and self.pattern != "fanout":
            text += f" {self.pattern}"
        if self.delay_ms:
            text += f" d={self.delay_ms:g}ms"
        if not self.keepalive:
            text += " keepalive=off"
        if self.proxy != "none":
            text += f" {self.proxy} buf={'on' if self.proxy_buffering else 'off'}"
            if not self.accel_header:
                text += " no-accel"
            if self.proxy_gzip:
                text += " gzip"
        if self.engine:
            text += f" [{self.engine}]"
        if self.fault:
            text += f" fault={self.fault}"
        if self.tls:
            text += " tls"
        if self.workers != 1 or self.brokered:
            text += f" workers={self.workers}" + (f"+{self.broker}" if self.brokered else "")
        if self.stack != "python":
            text += f" {self.stack}"
        if self.http != "1.1":
            text += f" h{self.http}"
            if self.streams_per_connection > 1:
                text += f" x{self.streams_per_connection}"
        if self.repeat:
            text += f" #{self.repeat + 1}"
        return text

    @property
    def key(self) -> tuple:
        """Identity of the load point across repeats and runs (for comparisons)."""
        key = (self.transport, self.clients, self.rate, self.payload_bytes,
               self.delay_ms, self.keepalive, self.proxy, self.proxy_buffering,
               self.accel_header, self.proxy_gzip, self.engine)
        if self.workers != 1 or self.brokered:  # today's points keep today's keys
            key += (self.workers, self.broker)
        # Appended only when not the default, so keys of HTTP/1.1 python runs stay as they were.
        if self.http != "1.1" or self.stack != "python":
            key += (self.http, self.streams_per_connection, self.stack)
        key += (self.fault,) if self.fault else ()
        return key + (self.pattern,) if self.pattern not in ("", "fanout") else key
