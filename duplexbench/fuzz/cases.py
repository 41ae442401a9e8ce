"""Malformed inputs for ``python -m duplexbench fuzz``, grouped by area as Autobahn does.

Every case is raw bytes for one fresh TCP connection: an HTTP request (HTTP
transports) or a valid WebSocket handshake followed by hostile frames. Cases
come from tricky fixed values plus seeded random mutations, so a run is
reproducible (``--seed``) and any count can be produced per transport.

Areas: ``framing`` (HTTP request syntax, WebSocket frame headers), ``control``
(WebSocket control frames), ``utf8``, ``close`` (closing handshake), ``limits``
(sizes), ``params`` (query parameters, headers, handshake fields).
"""

from __future__ import annotations

import base64
import random
import struct
from dataclasses import dataclass
from typing import Callable

from ..contract.websocket import encode_frame, parse_frame
from .cases_tcp import TCP_AREAS, tcp_case

__all__ = ["AREAS", "Case", "TRANSPORTS", "generate"]

#: ``tcp``: the plain-TCP listener's lines (cases_tcp.py), sent to its own port.
TRANSPORTS = ("longpoll", "sse", "ndjson", "publish", "websocket", "tcp")
AREAS = ("framing", "control", "utf8", "close", "limits", "params")

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
TRICKY = [
    "", "-1", "0", "1", "00", "1.5", "1e9", "abc", "9" * 19, "9" * 20, str(2**63), str(2**63 - 1),
    "nan", "inf", "-0", " 1", "1 ", "%00", "%ff%fe", "%c0%af", "%e2%80%ae", "x" * 300, "%F0%9F%98%80",
    "ab-1", "AB-1", "a-", "-", "--1", "a--1", "zzzzzzzzzzzzzzzzz-1", "e-" + str(2**63), "\\u0661",
    "%0d%0aX-Injected:%201", "true", "null", "[]", "{}", "%22",
]


@dataclass(frozen=True, slots=True)
class Case:
    transport: str
    area: str
    data: bytes  # what the connection sends
    websocket: bool = False  # data starts with a valid handshake; frames follow
    echo: int = 0  # the close code the client sent, which the server may echo


def _http(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
          version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {path} {version}", "Host: fuzz"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def _junk(rng: random.Random, n: int = 40) -> str:
    alphabet = "abcAZ09-_.~%/?&=#+ :;,\"'<>\\"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, n)))


def _value(rng: random.Random) -> str:
    return rng.choice(TRICKY) if rng.random() < 0.7 else _junk(rng)


def _path(transport: str) -> str:
    return {"longpoll": "/poll", "sse": "/stream", "ndjson": "/stream",
            "publish": "/publish", "websocket": "/ws"}[transport]


def _accept(transport: str) -> dict[str, str]:
    return {"Accept": "text/event-stream"} if transport == "sse" else {}


def _handshake(query: str = "topic=fuzz", extra: dict[str, str] | None = None) -> bytes:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": _KEY,
               "Sec-WebSocket-Version": "13", **(extra or {})}
    return _http("GET", f"/ws?{query}", headers)


# -- HTTP transports --

def _http_params(rng: random.Random, transport: str) -> bytes:
    path = _path(transport)
    names = {"longpoll": ["topic", "cursor", "timeout", "max"], "sse": ["topic", "cursor"],
             "ndjson": ["topic", "cursor"], "publish": ["topic", "ts"]}[transport]
    query = {name: "fuzz" if name == "topic" else "0" for name in names}
    query["timeout"] = "0" if "timeout" in query else None
    for name in rng.sample(names, rng.randint(1, len(names))):
        query[name] = _value(rng)
    if rng.random() < 0.1:
        query[_junk(rng, 8) or "x"] = _value(rng)
    text = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
    headers = dict(_accept(transport))
    roll = rng.random()
    if roll < 0.2 and transport in ("sse", "ndjson"):
        headers["Last-Event-ID"] = _value(rng).replace("%", "")
    elif roll < 0.35:
        headers["Origin"] = rng.choice(["null", "http://evil.example", "file://", _junk(rng), ""])
    elif roll < 0.45:
        headers["Accept"] = _junk(rng)
    method = "POST" if transport == "publish" else rng.choice(["GET"] * 8 + ["OPTIONS", "HEAD"])
    return _http(method, f"{path}?{text}", headers, b"x" if method == "POST" else b"")


def _http_framing(rng: random.Random, transport: str) -> bytes:
    path = _path(transport) + "?topic=fuzz&timeout=0"
    method = "POST" if transport == "publish" else "GET"
    choices: list[Callable[[], bytes]] = [
        lambda: f"{method} {path}\r\n\r\n".encode(),  # HTTP/0.9
        lambda: f"{method} {path} HTTP/9.9\r\nHost: x\r\n\r\n".encode(),
        lambda: f"{method}  {path}  HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        lambda: f"{method} {path} HTTP/1.1\r\nBad Header Line\r\n\r\n".encode(),
        lambda: f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n".encode(),
        lambda: f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".encode(),
        lambda: f"{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n".encode(),
        lambda: f"{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n".encode(),
        lambda: f"{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".encode(),
        lambda: f"{method} {path} HTTP/1.1\nHost: x\n\n".encode(),  # bare LF
        lambda: f"{method} {path} HTTP/1.1\r\n Host: x\r\n\r\n".encode(),  # obsolete folding
        lambda: f"{method} {path} HTTP/1.1\r\nHo\x00st: x\r\n\r\n".encode(),
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))) + b"\r\n\r\n",
        lambda: f"{method} {path}\x7f HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        lambda: f"{method} {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx".encode(),
    ]
    return rng.choice(choices)()


def _http_utf8(rng: random.Random, transport: str) -> bytes:
    bad = rng.choice([b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"a\x80b",
                      b"\xe2\x82", _bytes(rng, rng.randint(1, 20))])
    if transport == "publish":
        if rng.random() < 0.6:
            return _http("POST", "/publish?topic=fuzz", {}, bad)
        return _http("POST", "/publish?topic=" + "".join(f"%{b:02x}" for b in bad), {}, b"x")
    path = _path(transport)
    raw = f"GET {path}?topic=".encode() + bad + b"&timeout=0 HTTP/1.1\r\nHost: x\r\n"
    if transport == "sse":
        raw += b"Accept: text/event-stream\r\nLast-Event-ID: " + bad + b"\r\n"
    return raw + b"\r\n"


def _http_limits(rng: random.Random, transport: str) -> bytes:
    path = _path(transport) + "?topic=fuzz&timeout=0"
    method = "POST" if transport == "publish" else "GET"
    kind = rng.randrange(6)
    if kind == 0:
        return _http(method, path + "&x=" + "a" * rng.choice([8000, 9000, 70000]), _accept(transport))
    if kind == 1:
        return _http(method, path, {**_accept(transport), "X-Big": "b" * rng.choice([8190, 9000, 70000])})
    if kind == 2:
        return _http(method, path, {f"X-H{i}": "v" for i in range(rng.choice([100, 200, 2000]))})
    if kind == 3:
        return _http(method, path, {"Content-Length": str(rng.choice([2**31, 2**63, 10**30]))}, b"x")
    if kind == 4 and transport == "publish":
        return _http("POST", path, {}, b"p" * rng.choice([65537, 70000, 200_000]))
    if kind == 4:
        return _http(method, "/" + "p" * rng.choice([3000, 10000]), {})
    return _http(method, path + "&topic=" + "t" * rng.choice([65, 1000]), _accept(transport))


_HTTP = {"framing": _http_framing, "utf8": _http_utf8, "limits": _http_limits, "params": _http_params}
#: HTTP has no control frames and no closing handshake.
HTTP_AREAS = ("framing", "utf8", "limits", "params")


# -- WebSocket --

def _bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _mask(rng: random.Random) -> bytes:
    return _bytes(rng, 4)


def _ws_framing(rng: random.Random) -> bytes:
    kind = rng.randrange(9)
    payload = b'{"data":"f"}'
    if kind == 0:  # reserved bits set
        frame = bytearray(encode_frame(0x1, payload, _mask(rng)))
        frame[0] |= rng.choice([0x40, 0x20, 0x10, 0x70])
        return bytes(frame)
    if kind == 1:  # reserved opcodes
        return encode_frame(rng.choice([3, 4, 5, 6, 7, 0xB, 0xC, 0xF]), payload, _mask(rng))
    if kind == 2:  # unmasked client frame
        return encode_frame(0x1, payload)
    if kind == 3:  # continuation without a start
        return encode_frame(0x0, payload, _mask(rng))
    if kind == 4:  # a new message inside a fragmented one
        return encode_frame(0x1, b'{"da', _mask(rng), fin=False) + encode_frame(0x1, b"x", _mask(rng))
    if kind == 5:  # non-minimal length encodings
        return b"\x81\xfe\x00\x05" + _mask(rng) + b"hello"
    if kind == 6:  # a proper fragmented publish (valid: must be published)
        return encode_frame(0x1, b'{"data":', _mask(rng), fin=False) + encode_frame(0x0, b'"frag"}', _mask(rng))
    if kind == 7:  # garbage
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    text = rng.choice(["nope", "[]", '{"data":1}', '{"data":"x","ts":-1}', '{"data":"x","ts":"1.5"}',
                       '{"data":"x","ts":true}', '{"data":"x","ts":%d}' % 2**63, "{" * 5000, "null"])
    return encode_frame(rng.choice([0x1, 0x2]), text.encode(), _mask(rng))


def _ws_control(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return encode_frame(0x9, b"p" * rng.choice([125, 126, 200]), _mask(rng))
    if kind == 1:  # fragmented control frame
        return encode_frame(rng.choice([0x9, 0xA, 0x8]), b"ab", _mask(rng), fin=False)
    if kind == 2:  # unsolicited pong
        return encode_frame(0xA, _bytes(rng, rng.randint(0, 20)), _mask(rng))
    if kind == 3:  # ping between fragments (valid)
        return (encode_frame(0x1, b'{"data":', _mask(rng), fin=False) + encode_frame(0x9, b"x", _mask(rng))
                + encode_frame(0x0, b'"p"}', _mask(rng)))
    return encode_frame(0x9, b"", _mask(rng)) * rng.randint(1, 50)


def _ws_utf8(rng: random.Random) -> bytes:
    bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
    kind = rng.randrange(3)
    if kind == 0:
        return encode_frame(0x1, b'{"data":"' + bad + b'"}', _mask(rng))
    if kind == 1:  # split across fragments, invalid as a whole
        return encode_frame(0x1, b'{"data":"\xe2', _mask(rng), fin=False) + encode_frame(0x0, bad + b'"}', _mask(rng))
    return encode_frame(0x8, struct.pack("!H", 1000) + bad, _mask(rng))  # close reason


def _ws_close(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        code = rng.choice([0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, 1000, 1001, 3000, 4999])
        return encode_frame(0x8, struct.pack("!H", code), _mask(rng))
    if kind == 1:
        return encode_frame(0x8, b"\x03", _mask(rng))  # one-byte close payload
    if kind == 2:  # data after close
        return encode_frame(0x8, b"\x03\xe8", _mask(rng)) + encode_frame(0x1, b'{"data":"late"}', _mask(rng))
    return encode_frame(0x8, b"\x03\xe8" + b"r" * 123, _mask(rng)) * 2


def _ws_limits(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:  # declares 2^63 - 1 bytes
        return b"\x81\xff" + struct.pack("!Q", 2**63 - 1) + _mask(rng) + b"xx"
    if kind == 1:
        return encode_frame(0x1, b'{"data":"' + b"d" * rng.choice([65537, 70000]) + b'"}', _mask(rng))
    return encode_frame(0x1, b"x" * 200_000, _mask(rng))


def _ws_params(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return _handshake(f"topic=fuzz&cursor={_value(rng)}&subscribe={rng.choice(['0', '1', '2', ''])}")
    if kind == 1:
        key = rng.choice(["", "short", "not base64!!", base64.b64encode(_bytes(rng, 15)).decode(), _junk(rng)])
        return _handshake(extra={"Sec-WebSocket-Key": key})
    if kind == 2:
        return _handshake(extra={"Sec-WebSocket-Version": rng.choice(["", "8", "12", "14", "13, 8", _junk(rng)])})
    if kind == 3:
        return _handshake(extra={rng.choice(["Upgrade", "Connection"]): rng.choice(["", "h2c", _junk(rng)])})
    return _handshake(extra={"Origin": rng.choice(["null", "http://evil.example", _junk(rng)]),
                             "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
                             "Sec-WebSocket-Protocol": _junk(rng)})


def _close_code(frames: bytes) -> int:
    """The code of the first Close among the client's frames (0: none or no code)."""
    offset = 0
    while (frame := parse_frame(frames[offset:])) is not None:
        opcode, _, payload, used = frame
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
        offset += used
    return 0


_WS = {"framing": _ws_framing, "control": _ws_control, "utf8": _ws_utf8, "close": _ws_close,
       "limits": _ws_limits}


def generate(transport: str, count: int, seed: int) -> list[Case]:
    """``count`` cases for one transport, spread over every area, reproducible by seed."""
    rng = random.Random(f"{seed}-{transport}")
    cases = []
    areas = AREAS if transport == "websocket" else TCP_AREAS if transport == "tcp" else HTTP_AREAS
    for i in range(count):
        area = areas[i % len(areas)]
        if transport == "tcp":
            cases.append(Case(transport, area, tcp_case(area, rng)))
        elif transport != "websocket":
            cases.append(Case(transport, area, _HTTP[area](rng, transport)))
        elif area == "params":
            cases.append(Case(transport, area, _ws_params(rng)))
        else:
            topic = "fuzz" if rng.random() < 0.5 else "fuzz&subscribe=0"
            frames = _WS[area](rng)
            cases.append(Case(transport, area, _handshake(f"topic={topic}") + frames, True,
                              _close_code(frames)))
    return cases
