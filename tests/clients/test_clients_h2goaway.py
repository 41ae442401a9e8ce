"""GoawayHold: the HTTP/2 client keeps reading after a GOAWAY (RFC 9113 6.8), which the h2
library does not; so GOAWAY frames are taken out of the server's bytes before h2 sees them.
Whatever the frames and however reads split them, everything else passes through unchanged
and every GOAWAY is reported once, in order."""

from __future__ import annotations

from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, PingFrame, SettingsFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.h2goaway import GoawayHold


def _frame(kind: str, n: int):
    if kind == "data":
        f = DataFrame(2 * n + 1)
        f.data = b"d" * (n * 37 % 300)
    elif kind == "goaway":
        f = GoAwayFrame(0)
        f.last_stream_id, f.error_code, f.additional_data = n, n % 3, b"x" * (n % 5)
    elif kind == "headers":
        f = HeadersFrame(2 * n + 1)
        f.data = b"\x88"  # :status 200 (HPACK index 8)
        f.flags.add("END_HEADERS")
    elif kind == "settings":
        f = SettingsFrame(0)
        f.settings = {SettingsFrame.ENABLE_CONNECT_PROTOCOL: 1}
    else:
        f = PingFrame(0)
        f.opaque_data = b"12345678"
    return f


@settings(max_examples=200, deadline=None)
@given(kinds=st.lists(st.sampled_from(["data", "goaway", "headers", "settings", "ping"]),
                      max_size=40),
       cuts=st.lists(st.integers(min_value=1, max_value=700), max_size=60))
def test_goaways_are_taken_out_whatever_the_reads(kinds, cuts):
    frames = [_frame(k, i) for i, k in enumerate(kinds)]
    wire = b"".join(f.serialize() for f in frames)
    hold, out, pos = GoawayHold(), [], 0
    for size in cuts + [len(wire)]:
        out.append(hold.feed(wire[pos:pos + size]))
        pos += size
    assert b"".join(out) == b"".join(f.serialize() for f in frames
                                     if not isinstance(f, GoAwayFrame))
    assert hold.goaways == [(f.last_stream_id, f.error_code) for f in frames
                            if isinstance(f, GoAwayFrame)]
