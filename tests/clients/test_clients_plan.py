"""Patterns made concrete: who subscribes where, who publishes what, and how."""

from __future__ import annotations

from clients.plan import ROUTE_POST, ROUTE_WS_PUB, ROUTE_WS_SUB, make_plan
from clients.spec import LoadSpec

URL = "http://127.0.0.1:1"


def spec(**kw):
    return LoadSpec(**{"transport": "websocket", "sub_url": URL, "topic_prefix": "p", **kw})


def test_fanout_round_robin():
    s = spec(pattern="fanout", clients=5, topics=2)
    plan = make_plan(s)
    assert plan.topics == ("p-0", "p-1")
    assert plan.sub_topic.tolist() == [0, 1, 0, 1, 0]
    assert plan.subscribers_per_topic.tolist() == [3, 2]
    assert plan.topic_of(4, s).tolist() == [0, 1, 0, 1]
    assert plan.sender_of(2, s).tolist() == [-1, -1]
    assert plan.route == ROUTE_POST
    assert make_plan(spec(pattern="fanout", upstream="transport")).route == ROUTE_WS_PUB


def test_echo_and_chat():
    echo = spec(pattern="echo", clients=3, upstream="transport")
    plan = make_plan(echo)
    assert plan.topics == ("p-0", "p-1", "p-2")
    assert plan.topic_of(4, echo).tolist() == [0, 1, 2, 0]
    assert plan.sender_of(4, echo).tolist() == [0, 1, 2, 0]
    assert plan.route == ROUTE_WS_SUB and plan.messages_up_on_sub
    chat = spec(pattern="chat", clients=4, topics=2)
    plan = make_plan(chat)
    assert plan.sub_topic.tolist() == [0, 1, 0, 1]
    assert plan.topic_of(4, chat).tolist() == [0, 1, 0, 1]
    assert plan.route == ROUTE_POST
    # HTTP transports always POST, whatever upstream says.
    assert make_plan(spec(transport="sse", pattern="echo", upstream="transport")).route == ROUTE_POST
