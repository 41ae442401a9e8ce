"""The proxy's cut: SIGUSR1 resets every proxied connection, and new ones still work."""

from __future__ import annotations

import socket
import time

from duplexbench.netem.calibrate import EchoServer, echo_rtts_ms
from duplexbench.netem.link import LinkConfig
from duplexbench.netem.process import ProxyProcess
from tests._timeouts import scaled


def _wait_closed(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if sock.recv(1024) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            continue
    return False


def test_cut_closes_open_connections_and_keeps_accepting():
    with EchoServer() as echo, ProxyProcess(LinkConfig(), echo.address) as proxy:
        socks = [socket.create_connection(proxy.address, timeout=5) for _ in range(3)]
        try:
            for sock in socks:  # each is proxied end to end before the cut
                sock.sendall(b"ping")
                assert sock.recv(16) == b"ping"
            proxy.cut()
            deadline = time.monotonic() + scaled(5)
            assert all(_wait_closed(sock, deadline) for sock in socks)
            assert echo_rtts_ms(proxy.address, count=2)  # a new connection works
        finally:
            for sock in socks:
                sock.close()
        proxy.stop()
    assert proxy.stats is not None  # the "cut" line did not replace the final counters
    assert proxy.stats["event"] == "stats"
    assert proxy.stats["cuts"] == 1 and proxy.stats["cut_connections"] == 3
