"""Deliberately broken plain-TCP listeners for the probe's tests (the tcp.* rules).

The TCP listener has no middleware to put in front of it, so each breakage patches
servers/tcp.py (or the hub's framing and heartbeats) where it reads and writes lines;
the real app is otherwise unchanged (tests/probe/_broken.py runs it). Each names the
rules that must then fail.
"""

from __future__ import annotations

__all__ = ["TCP_BREAKAGES"]


def _b_tcp_hello_no_cursor(mp):
    import servers.tcp

    original = servers.tcp.encode_hello
    mp.setattr(servers.tcp, "encode_hello", lambda epoch, seq=None: original(epoch))


def _b_tcp_lines_crlf(mp):
    import servers.hub
    from servers.fanout import TCP

    original = servers.hub.frame_for

    def frame_for(kind, seq, body, epoch):
        wire, counted = original(kind, seq, body, epoch)
        return (wire[:-1] + b"\r\n", counted + 1) if kind == TCP else (wire, counted)
    mp.setattr(servers.hub, "frame_for", frame_for)


def _b_tcp_publish_ignored(mp):
    from servers.tcp import TcpConnection

    mp.setattr(TcpConnection, "_publish", lambda self, line: None)


def _patch_subscribe_line(mp, change):
    import servers.tcp

    original = servers.tcp.decode_subscribe
    mp.setattr(servers.tcp, "decode_subscribe", lambda line: change(original(line)))


def _b_tcp_subscribe_false_ignored(mp):
    _patch_subscribe_line(mp, lambda req: req.__class__(req.topic, req.cursor, True))


def _b_tcp_cursor_ignored(mp):
    _patch_subscribe_line(mp, lambda req: req.__class__(req.topic, None, req.subscribe))


def _b_tcp_errors_silent(mp):
    from servers.tcp import TcpConnection

    def fail(self, status, reason, **extra):
        if self.transport is not None and not self._closing:
            self._closing = True
            if self.sink is not None:
                self.hub.unsubscribe(self.sink)
            self.transport.close()  # no error line
    mp.setattr(TcpConnection, "fail", fail)


def _b_tcp_no_line_limit(mp):
    import servers.tcp

    mp.setattr(servers.tcp, "LINE_OVERHEAD", 1 << 30)


def _b_tcp_no_heartbeat(mp):
    import servers.hub
    from servers.fanout import TCP

    beats = list(servers.hub._HEARTBEATS)
    beats[TCP] = b""
    mp.setattr(servers.hub, "_HEARTBEATS", tuple(beats))


TCP_BREAKAGES = [
    ("tcp-hello-no-cursor", _b_tcp_hello_no_cursor, ["tcp.hello", "tcp.cursor", "tcp.retention"]),
    ("tcp-lines-crlf", _b_tcp_lines_crlf, ["tcp.lines", "tcp.publish"]),
    ("tcp-publish-ignored", _b_tcp_publish_ignored, ["tcp.publish"]),
    ("tcp-subscribe-false-ignored", _b_tcp_subscribe_false_ignored, ["tcp.hello", "tcp.publish"]),
    ("tcp-cursor-ignored", _b_tcp_cursor_ignored, ["tcp.cursor", "tcp.reset", "tcp.ahead", "tcp.retention"]),
    ("tcp-errors-silent", _b_tcp_errors_silent, ["tcp.bad-input", "tcp.too-long", "tcp.ahead"]),
    ("tcp-no-line-limit", _b_tcp_no_line_limit, ["tcp.too-long"]),
    ("tcp-no-heartbeat", _b_tcp_no_heartbeat, ["tcp.heartbeat"]),
]
