"""How much does the emulation itself add? Echo round trips through a proxy, measured.

A delay emulator that adds 0.3 ms of its own is fine for 25 ms experiments and
wrong for 0 ms ones, so every network path reports its own error: small echoes
(64 bytes, one at a time, TCP_NODELAY) straight to an echo server and through a
proxy with the same link settings, at delay 0 (the proxy's own cost) and at the
configured delay (measured against configured). One-way figures are half a
round trip. Jitter, bandwidth and loss are left out of the calibration: they are
random or size-dependent by design, and the question here is the base delay.
"""

from __future__ import annotations

import dataclasses
import socket
import socketserver
import statistics
import threading
import time
from dataclasses import dataclass

from .link import LinkConfig
from .process import ProxyProcess

__all__ = ["Calibration", "EchoServer", "calibrate", "echo_rtts_ms"]


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    """A loopback echo server on a free port, in threads of this process."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def __enter__(self) -> "EchoServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()


def echo_rtts_ms(address: tuple[str, int], count: int = 20, size: int = 64,
                 gap_s: float = 0.002, timeout: float = 10.0) -> list[float]:
    """Round-trip times of ``count`` echoes of ``size`` bytes on one connection (after one warm-up)."""
    payload = b"e" * size
    rtts = []
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count + 1):  # the first also pays the emulated handshake: discarded
            start = time.perf_counter()
            sock.sendall(payload)
            got = 0
            while got < size:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("echo connection closed")
                got += len(chunk)
            if i:
                rtts.append((time.perf_counter() - start) * 1000.0)
            time.sleep(gap_s)
    return rtts


@dataclass(frozen=True, slots=True)
class Calibration:
    configured_one_way_ms: float
    samples: int
    direct_rtt_p50_ms: float  # echo without the proxy: what the rest costs
    zero_delay_rtt_p50_ms: float  # through the proxy at delay 0
    proxy_added_one_way_p50_ms: float  # the proxy's own cost per direction
    proxy_added_one_way_max_ms: float
    rtt_p50_ms: float  # through the proxy at the configured delay
    rtt_max_ms: float
    measured_one_way_p50_ms: float  # (rtt - direct) / 2
    measured_one_way_max_ms: float
    error_one_way_p50_ms: float  # measured - configured

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}


_CACHE: dict[tuple, Calibration] = {}


def calibrate(config: LinkConfig, cpu: int | None = None, count: int = 20) -> Calibration:
    """Measure the proxy at delay 0 and at ``config.delay_ms``; cached per (delay, cpu)."""
    key = (config.delay_ms, cpu, count)
    if key in _CACHE:
        return _CACHE[key]
    base = LinkConfig(handshake=config.handshake, rto_ms=config.rto_ms)
    with EchoServer() as echo:
        direct = echo_rtts_ms(echo.address, count)
        with ProxyProcess(base, echo.address, cpu=cpu) as proxy:
            assert proxy.address is not None
            zero = echo_rtts_ms(proxy.address, count)
        if config.delay_ms:
            with ProxyProcess(dataclasses.replace(base, delay_ms=config.delay_ms), echo.address, cpu=cpu) as proxy:
                assert proxy.address is not None
                delayed = echo_rtts_ms(proxy.address, count)
        else:
            delayed = zero
    d50 = statistics.median(direct)
    z50, d_med = statistics.median(zero), statistics.median(delayed)
    result = Calibration(
        configured_one_way_ms=float(config.delay_ms),
        samples=count,
        direct_rtt_p50_ms=d50,
        zero_delay_rtt_p50_ms=z50,
        proxy_added_one_way_p50_ms=(z50 - d50) / 2,
        proxy_added_one_way_max_ms=(max(zero) - d50) / 2,
        rtt_p50_ms=d_med,
        rtt_max_ms=max(delayed),
        measured_one_way_p50_ms=(d_med - d50) / 2,
        measured_one_way_max_ms=(max(delayed) - d50) / 2,
        error_one_way_p50_ms=(d_med - d50) / 2 - config.delay_ms,
    )
    _CACHE[key] = result
    return result


def http_rtts_ms(address: tuple[str, int], count: int = 20, path: str = "/healthz",
                 timeout: float = 10.0) -> list[float]:
    """Round trips of keep-alive ``GET path`` (for paths without an echo server: netem mode)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n\r\n".encode()
    rtts = []
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count + 1):
            start = time.perf_counter()
            sock.sendall(request)
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed")
                buffer += chunk
            head, _, body = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed")
                body += chunk
            if i:
                rtts.append((time.perf_counter() - start) * 1000.0)
    return rtts
