"""The proxy process on real loopback sockets: correctness with generous tolerances."""

from __future__ import annotations

import socket
import statistics
import time

import pytest

from duplexbench.netem.calibrate import EchoServer, echo_rtts_ms
from duplexbench.netem.link import LinkConfig
from duplexbench.netem.process import ProxyProcess


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


def test_echo_rtt_is_twice_the_one_way_delay(echo):
    with ProxyProcess(LinkConfig(delay_ms=25), echo.address) as proxy:
        rtts = echo_rtts_ms(proxy.address, count=10)
    assert 48.0 <= statistics.median(rtts) <= 58.0, rtts
    assert min(rtts) >= 48.0


def test_zero_delay_adds_little(echo):
    with ProxyProcess(LinkConfig(), echo.address) as proxy:
        rtts = echo_rtts_ms(proxy.address, count=10)
    assert statistics.median(rtts) < 5.0, rtts


def test_tcp_nodelay_on_both_sockets_and_stats_printed(echo):
    proxy = ProxyProcess(LinkConfig(), echo.address).start()
    echo_rtts_ms(proxy.address, count=2)
    proxy.stop()
    assert proxy.stats is not None and proxy.stats["event"] == "stats"
    assert proxy.stats["nodelay_failures"] == 0
    assert proxy.stats["connections"] == 1


def test_bandwidth_limit_caps_throughput(echo):
    limit_kbps = 4000  # 500 kB/s
    total = 400_000
    with ProxyProcess(LinkConfig(bandwidth_kbps=limit_kbps), echo.address) as proxy:
        with socket.create_connection(proxy.address, timeout=10) as sock:
            start = time.perf_counter()
            sock.sendall(b"b" * total)
            got = 0
            while got < total:
                chunk = sock.recv(1 << 16)
                assert chunk
                got += len(chunk)
            elapsed = time.perf_counter() - start
    rate_kbps = total * 8 / 1000 / elapsed
    # Each direction has its own bucket; the echo crosses both, pipelined.
    assert rate_kbps <= limit_kbps * 1.25, rate_kbps
    assert rate_kbps >= limit_kbps * 0.4, rate_kbps


def test_jitter_keeps_bytes_in_order(echo):
    with ProxyProcess(LinkConfig(delay_ms=5, jitter_ms=4), echo.address, seed=7) as proxy:
        with socket.create_connection(proxy.address, timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sent = b"".join(b"%05d" % i for i in range(400))
            for i in range(0, len(sent), 50):
                sock.sendall(sent[i : i + 50])
            received = b""
            while len(received) < len(sent):
                chunk = sock.recv(1 << 16)
                assert chunk
                received += chunk
    assert received == sent


def test_loss_is_a_stall_not_a_drop(echo):
    with ProxyProcess(LinkConfig(loss_pct=50, rto_ms=50), echo.address, seed=3) as proxy:
        rtts = echo_rtts_ms(proxy.address, count=10)
        proxy.stop()
    assert len(rtts) == 10  # every byte arrived
    assert max(rtts) >= 45.0  # at least one RTO stall
    assert proxy.stats["stalls"] >= 1


def test_server_close_reaches_the_client(echo):
    with ProxyProcess(LinkConfig(delay_ms=5), echo.address) as proxy:
        sock = socket.create_connection(proxy.address, timeout=5)
        sock.sendall(b"x")
        assert sock.recv(10) == b"x"
        sock.shutdown(socket.SHUT_WR)  # the echo server then closes: its FIN comes back
        assert sock.recv(10) == b""
        sock.close()


def test_many_connections_each_get_their_own_bytes(echo):
    with ProxyProcess(LinkConfig(delay_ms=5), echo.address) as proxy:
        socks = [socket.create_connection(proxy.address, timeout=10) for _ in range(30)]
        try:
            for i, sock in enumerate(socks):
                sock.sendall(b"conn-%03d;" % i)
            for i, sock in enumerate(socks):
                want = b"conn-%03d;" % i
                got = b""
                while len(got) < len(want):
                    chunk = sock.recv(64)
                    assert chunk
                    got += chunk
                assert got == want
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.1)  # the FINs cross the 5 ms link
        proxy.stop()
    assert proxy.stats["connections"] == 30 and proxy.stats["active"] == 0


# One connection's first round trip, judged within 24 ms: alone (tests/conftest.py); beside a
# loaded make test it once took 115 ms.
@pytest.mark.exclusive
def test_new_connection_pays_the_handshake_round_trip(echo):
    """First bytes of a connection leave one RTT late (SYN, SYN-ACK): 4 transits to the echo."""
    with ProxyProcess(LinkConfig(delay_ms=20), echo.address) as proxy:
        with socket.create_connection(proxy.address, timeout=5) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            start = time.perf_counter()
            sock.sendall(b"h")
            assert sock.recv(1) == b"h"
            first = (time.perf_counter() - start) * 1000
    assert 76.0 <= first <= 100.0, first
