"""The compiled parts (clients/readloop.c) do what their Python twins do.

``ws_walk`` is clients/fastws.py's ``walk_frames_py`` in C: on any bytes from any start,
the same frame boundaries, carried-over head and control frames; and on a stream of real
frames cut anywhere, the walk of the pieces finds every ping and close of the whole.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clients import readloop
from clients.fastws import walk_frames_py


def _frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    n, b1 = len(payload), 0x80 if masked else 0
    if n < 126:
        head = bytes([0x80 | opcode, b1 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, b1 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, b1 | 127]) + n.to_bytes(8, "big")
    return head + (b"mask" if masked else b"") + payload


FRAMES = st.lists(st.tuples(st.sampled_from([0x1, 0x2, 0x8, 0x9, 0xA]),
                            st.integers(0, 70_000), st.booleans()), min_size=1, max_size=6)


def _walk(walk, buf: bytes, pos: int):
    """The walk's result, or the error it raised (a length no buffer holds)."""
    try:
        return walk(buf, pos)
    except ValueError as exc:
        return f"ValueError: {exc}"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 12))
def test_any_bytes_walk_the_same_in_c_and_python(buf, pos):
    assert _walk(readloop.ws_walk, buf, pos) == _walk(walk_frames_py, buf, pos)


def test_a_64_bit_length_with_its_top_bit_set_is_refused_by_both():
    # Found by the test above: RFC 6455 5.2 says that bit is 0; no buffer holds 2^63 bytes.
    buf = bytes(7) + b"\x7f\x80" + bytes(7)
    for walk in (readloop.ws_walk, walk_frames_py):
        assert _walk(walk, buf, 0) == "ValueError: a WebSocket frame longer than memory"


@settings(max_examples=200, deadline=None)
@given(FRAMES, st.data())
def test_real_frames_cut_anywhere_walk_the_same(frames, data):
    stream = b"".join(_frame(op, b"x" * (min(n, 125) if op >= 8 else n), masked)
                      for op, n, masked in frames)
    cut = data.draw(st.integers(0, len(stream)))
    first = readloop.ws_walk(stream[:cut], 0)
    assert first == walk_frames_py(stream[:cut], 0)
    # Carry over as WsSink.attention does, then walk the rest: every control frame once.
    pos, head_at, controls = first
    rest = stream[head_at:] if head_at >= 0 else stream[cut:]
    skip = 0 if head_at >= 0 else pos - cut
    pos2, head_at2, controls2 = readloop.ws_walk(rest, skip)
    assert head_at2 == -1 and pos2 == len(rest)
    whole = walk_frames_py(stream, 0)[2]
    assert [c[0] for c in controls + controls2] == [c[0] for c in whole]
