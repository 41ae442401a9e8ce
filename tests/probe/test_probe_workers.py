"""The probe against two workers behind Redis: to a client they are one server.

Every probe connection lands on whichever worker the kernel picks, so rules
that publish on one connection and read on another (cursors, retention,
resets, the same bytes on every transport) cross workers as often as not.
"""

from __future__ import annotations

import pytest

from duplexbench.broker import RedisProcess
from duplexbench.probe import RULES, Options, format_report, probe
from _timeouts import scaled

from ._broken import ALLOWED

SERVER_ARGS = ["--heartbeat", "0.5", "--retention", "12", "--allow-origin", ALLOWED]


@pytest.fixture(scope="module")
def redis_url():
    with RedisProcess() as redis:
        yield redis.url


@pytest.mark.parametrize("run", [1, 2])  # twice: the kernel spreads connections differently
def test_every_rule_passes_against_two_workers(start_server, redis_url, run) -> None:
    server = start_server("all", args=[*SERVER_ARGS, "--workers", "2", "--broker", "redis",
                                       "--redis-url", redis_url])
    # HTTP/2 is nginx's or the Node reference's (tests/proxies, tests/node), not aiohttp's
    report = probe(Options(server.url, heartbeat_s=0.5, retention=12, allowed_origin=ALLOWED,
                           rule_timeout_s=scaled(5), skip=("h2*",)))
    assert report.mounted == ("longpoll", "stream", "websocket", "tcp")
    assert report.ok, format_report(report)
    assert [r.rule.id for r in report.results if r.status != "pass"] == []
    assert len(report.results) == len([r for r in RULES if not r.id.startswith("h2")])
