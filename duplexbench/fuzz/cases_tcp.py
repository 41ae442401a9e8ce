"""Malformed input for the plain-TCP listener (servers/README.md, "Plain TCP lines").

A module of its own beside cases.py (HTTP requests and WebSocket frames): every
case here is the bytes of one fresh connection to the ``--tcp-port`` listener,
lines ending in ``\\n``. Areas, in cases.py's names: ``framing`` (no newline, CRLF,
NULs, binary garbage, lines that are not JSON objects, bad publish lines after a good
subscribe), ``utf8`` (invalid UTF-8 in the subscribe or a publish line), ``limits``
(lines over the server's bound, ``data`` over ``--max-payload``), ``params`` (bad
topics and cursors). The server must answer each with an error line of a 4xx status,
a hello, or silence; never a 5xx, a crash, or a loss for the good client.
"""

from __future__ import annotations

import json
import random

__all__ = ["TCP_AREAS", "classify_tcp_answer", "tcp_case"]

TCP_AREAS = ("framing", "utf8", "limits", "params")

_SUBSCRIBE = b'{"topic":"fuzz"}\n'
_NOT_OBJECTS = [b"", b"{", b"}", b"[]", b"null", b"1", b'"topic"', b"{topic:fuzz}",
                b'{"topic":"fuzz"', b'{"topic":1}', b'{"topic":null}', b'{"topic":["a"]}',
                b'{"topic":"fuzz","subscribe":"no"}', b'{"cursor":"0"}', b"GET / HTTP/1.1",
                b'{"topic":"fuzz"}{"topic":"fuzz"}', b"\xef\xbb\xbf{\"topic\":\"fuzz\"}"]
_BAD_PUBLISH = [b"{", b"[]", b"7", b'{"data":1}', b'{"data":null}', b'{"ts":1}',
                b'{"data":"x","ts":"abc"}', b'{"data":"x","ts":-1}', b'{"data":"x","ts":1e400}',
                b'{"data":"x","ts":99999999999999999999999999}', b'{"data":["x"]}']
_BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]
_CURSORS = ["", "-1", "abc", "a-", "-", "--1", "9" * 25, str(2**63), "zzzz-1", "1.5", "0-0",
            "ab-" + "9" * 30, "\u0661", "0" * 200, None, 1, 1.5, [], {}, True]


def tcp_case(area: str, rng: random.Random) -> bytes:
    """One connection's bytes for ``area``."""
    if area == "framing":
        kind = rng.randrange(6)
        if kind == 0:
            return rng.choice(_NOT_OBJECTS) + rng.choice([b"\n", b"\r\n", b""])
        if kind == 1:
            return _SUBSCRIBE + rng.choice(_BAD_PUBLISH) + b"\n"
        if kind == 2:
            return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        if kind == 3:
            return b"\x00" * rng.randint(1, 50) + b"\n"
        if kind == 4:
            return b"\n" * rng.randint(1, 500) + _SUBSCRIBE  # blank lines before subscribing
        return _SUBSCRIBE[:rng.randint(1, len(_SUBSCRIBE) - 2)]  # half a line, then EOF
    if area == "utf8":
        bad = rng.choice(_BAD_UTF8)
        if rng.random() < 0.5:
            return b'{"topic":"fu' + bad + b'zz"}\n'
        return _SUBSCRIBE + b'{"data":"' + bad + b'"}\n'
    if area == "limits":
        kind = rng.randrange(3)
        if kind == 0:  # a line with no end, past any bound
            return b'{"topic":"' + b"t" * rng.choice([70_000, 200_000]) + b'"}\n'
        if kind == 1:  # data over --max-payload
            return _SUBSCRIBE + b'{"data":"' + b"d" * rng.choice([65_537, 70_000]) + b'"}\n'
        return b'{"topic":"' + b"t" * rng.choice([65, 300, 5000]) + b'"}\n'  # topic too long
    cursor = rng.choice(_CURSORS)
    line = {"topic": rng.choice(["fuzz", "", " ", "a/b", "x" * 64, "%00", "\n"]), "cursor": cursor}
    if rng.random() < 0.3:
        line["subscribe"] = rng.choice([False, 0, "0", None])
    return json.dumps(line).encode() + b"\n"


def classify_tcp_answer(data: bytes, final: bool = False) -> str | None:
    """The outcome of what the listener sent back: an error line's status (4xx / 5xx), ``ok``
    for a hello or reset (or silence, at the end), None to keep reading."""
    for line in data.split(b"\n")[:-1]:  # complete lines only
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            return "5xx"  # the server's own lines are always JSON (contract/tcp.py)
        if isinstance(value, dict) and "error" in value:
            status = value.get("status")
            return "4xx" if isinstance(status, int) and 400 <= status < 500 else "5xx"
        if isinstance(value, dict) and (value.get("event") == "hello" or "reset" in value
                                        or "epoch" in value):
            continue  # a good start; an error line may still follow
    return "ok" if final else None
