"""Each probe rule has a deliberately broken server on which it fails (and the probe says so)."""

from __future__ import annotations

import asyncio

import pytest
from _timeouts import scaled

from duplexbench.probe import RULES, Options
from duplexbench.probe.core import run_rules

from ._broken import ALLOWED, BREAKAGES, HEARTBEAT_S, RETENTION, ok_200_server, real_server
from ._broken_h2 import H2_BREAKAGES

#: Rules the "200 []" server must fail; http.malformed fails only there (aiohttp always parses).
MUST_FAIL_ON_200 = ["http.malformed", "http.404", "publish.seq", "poll.204", "ws.handshake",
                    "sse.headers-first", "origin.denied.publish", "input.no-5xx"]


def _options(url: str, only) -> Options:
    return Options(url, heartbeat_s=HEARTBEAT_S, retention=RETENTION, allowed_origin=ALLOWED,
                   only=tuple(only), rule_timeout_s=scaled(5))


def test_every_rule_is_broken_by_some_test() -> None:
    covered = {rule for _, _, rules in BREAKAGES for rule in rules} | set(MUST_FAIL_ON_200)
    covered |= {rule for rules in H2_BREAKAGES.values() for rule in rules}  # test_probe_h2.py
    missing = [r.id for r in RULES if r.id not in covered]
    assert not missing, f"rules no broken server makes fail: {missing}"


@pytest.mark.parametrize("name,install,must_fail", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_broken_rule_fails(name, install, must_fail, monkeypatch) -> None:
    middleware = install(monkeypatch)

    async def run():
        async with real_server(middleware) as url:
            return await run_rules(_options(url, must_fail))

    report = asyncio.run(asyncio.wait_for(run(), scaled(60)))
    status = {r.rule.id: r.status for r in report.results}
    assert {rule: status.get(rule) for rule in must_fail} == {rule: "fail" for rule in must_fail}
    for result in report.failed:  # a failure says what was expected and what came back
        assert result.expected and result.got


def test_ok_200_server_breaks_the_contract() -> None:
    async def run():
        async with ok_200_server() as url:
            return await run_rules(_options(url, ["*"]))

    report = asyncio.run(asyncio.wait_for(run(), scaled(90)))
    status = {r.rule.id: r.status for r in report.results}
    assert report.mounted == ("longpoll", "stream", "websocket")  # 200 on every path = mounted
    assert {r: status[r] for r in MUST_FAIL_ON_200} == {r: "fail" for r in MUST_FAIL_ON_200}
    assert not report.ok and len(report.failed) > len(RULES) // 2
