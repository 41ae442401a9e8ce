"""The browser engine's count of connections to the origin (engines/browser/connections.py),
on real sockets: a child process (as Chromium is one) holds some connections to a listener
and one to another port; only the ones to the listener count, and each once."""

from __future__ import annotations

import socket
import subprocess
import sys

from duplexbench.engines.browser.connections import OriginConnections
from tests._timeouts import scaled

HOLDER = """
import socket, sys
port, other, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
held.append(socket.create_connection(("127.0.0.1", other)))
print("ready", flush=True)
sys.stdin.readline()
"""


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_counts_the_descendants_connections_to_the_origin_only():
    origin, other = _listener(), _listener()
    port = origin.getsockname()[1]
    counter = OriginConnections(f"https://127.0.0.1:{port}/pages/bench.html")
    assert counter.sample() == 0
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(port),
                              str(other.getsockname()[1]), "3"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        accepted = [origin.accept()[0] for _ in range(3)]
        assert counter.sample() == 3
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(timeout=scaled(10))
        assert counter.sample() == 0  # gone with the process
        assert (counter.max, counter.samples) == (3, 3)
        for sock in accepted:
            sock.close()
    finally:
        child.kill()
        child.wait()
        origin.close()
        other.close()


def test_a_name_and_a_default_port_resolve_to_the_socket_address():
    counter = OriginConnections("http://localhost/x")
    assert counter.address == ("127.0.0.1", 80)
    assert OriginConnections("https://127.0.0.1/").address == ("127.0.0.1", 443)
