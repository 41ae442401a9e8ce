"""LoadSpec's HTTP/2 fields: ``http`` ("1.1" | "2") and ``streams_per_connection``; the defaults
keep every existing point HTTP/1.1, one connection per subscriber; what HTTP/2 cannot do is
refused with the field named, never silently run as something else."""

from __future__ import annotations

import pytest

from clients.h2sub import H2LongPollSubscriber, H2SSESubscriber
from clients.h2ws import H2WebSocketSubscriber
from clients.longpoll import LongPollSubscriber
from clients.spec import LoadSpec, SpecError
from clients.subscribers import make_subscribers
from clients.tcpinfo import TcpTally

URL = "http://127.0.0.1:9"


def test_defaults_keep_http11_and_one_connection_each():
    spec = LoadSpec(transport="sse", sub_url=URL)
    assert spec.http == "1.1" and spec.streams_per_connection == 1
    again = LoadSpec.from_json(LoadSpec(transport="sse", sub_url=URL, http="2",
                                        streams_per_connection=8).to_json())
    assert again.http == "2" and again.streams_per_connection == 8


@pytest.mark.parametrize("fields, words", [
    ({"http": "3"}, "http: expected one of 1.1, 2"),
    ({"http": 2}, "http: expected one of 1.1, 2"),
    ({"streams_per_connection": 0, "http": "2"}, "streams_per_connection: expected an integer"),
    ({"streams_per_connection": 4}, "needs http = 2"),
    ({"transport": "longpoll", "http": "2", "keepalive": False}, "no HTTP/2 form"),
    ({"transport": "websocket", "http": "2", "upstream": "transport"}, "upstream = post"),
])
def test_what_http2_cannot_do_is_a_clear_error(fields, words):
    with pytest.raises(SpecError, match=words.replace(".", r"\.")):
        LoadSpec(**{"transport": "sse", "sub_url": URL, **fields})


def test_subscribers_share_one_link_per_page():
    spec = LoadSpec(transport="sse", sub_url=URL, http="2", streams_per_connection=3, clients=7)
    subs = make_subscribers(spec, ["t-0"] * 7, [None] * 7, list(range(7)), tcp=TcpTally(),
                            on_error=print, on_message=lambda env, ns: None)
    assert all(isinstance(s, H2SSESubscriber) for s in subs)
    links = [s.link for s in subs]
    assert links[0] is links[2] and links[3] is links[5] and links[6] is not links[5]
    assert [len({id(x) for x in links[i:i + 3]}) for i in (0, 3)] == [1, 1]
    assert links[0].users == 3 and links[6].users == 1
    lp = make_subscribers(LoadSpec(transport="longpoll", sub_url=URL, http="2"), ["t-0"], [None],
                          [0], tcp=None, on_error=print, on_message=lambda env, ns: None)
    assert isinstance(lp[0], H2LongPollSubscriber)
    h1 = make_subscribers(LoadSpec(transport="longpoll", sub_url=URL), ["t-0"], [None], [0],
                          tcp=None, on_error=print, on_message=lambda env, ns: None)
    assert type(h1[0]) is LongPollSubscriber
    ws = make_subscribers(LoadSpec(transport="websocket", sub_url=URL, http="2"), ["t-0"],
                          [None], [0], tcp=None, on_error=print, on_message=lambda e, n: None)
    assert isinstance(ws[0], H2WebSocketSubscriber)
