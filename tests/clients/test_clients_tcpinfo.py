"""TCP_INFO counts against a known exchange: the kernel's figures must equal
what the sockets wrote and read, byte for byte."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from clients.tcpinfo import TcpTally, diff, read_tcp_info


def _pair():
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    server.close()
    return client, peer


def _wait_acked(sock, want: int, start) -> tuple:
    deadline = time.monotonic() + 2.0
    while True:
        counts = diff(read_tcp_info(sock), start)
        if counts[0] >= want or time.monotonic() > deadline:
            return counts
        time.sleep(0.001)


def test_tcp_info_matches_socket_counts_exactly():
    client, peer = _pair()
    try:
        start_c, start_p = read_tcp_info(client), read_tcp_info(peer)
        assert start_c is not None, "TCP_INFO unavailable"
        up = b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n" * 3
        down = b"x" * 70_001  # several segments
        client.sendall(up)
        got = b""
        while len(got) < len(up):
            got += peer.recv(65536)
        sender = threading.Thread(target=peer.sendall, args=(down,))
        sender.start()
        received = 0
        while received < len(down):
            received += len(client.recv(65536))
        sender.join()
        c = _wait_acked(client, len(up), start_c)
        p = _wait_acked(peer, len(down), start_p)
        assert c[0] == len(up) and c[1] == len(down)  # client: acked up, received down
        assert p[0] == len(down) and p[1] == len(up)
        assert c[2] >= 1 and c[3] >= 2  # segments: at least one out, several in
    finally:
        client.close()
        peer.close()


def test_tally_keeps_counts_of_closed_sockets():
    tally = TcpTally()
    client, peer = _pair()
    tally.add(client)
    before = tally.total()
    client.sendall(b"hello")
    assert peer.recv(10) == b"hello"
    _wait_acked(client, 5, before)
    tally.retire(client)
    client.close()
    peer.close()
    assert diff(tally.total(), before)[0] == 5
    assert not tally.live


@pytest.mark.parametrize("bad", [None, -1])
def test_unreadable_socket_gives_none(bad):
    assert read_tcp_info(bad) is None
