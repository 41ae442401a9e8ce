"""The A/B gate in a clone: a commit adding 2 ms before each delivery and 100 us of CPU per
delivered message fails against its parent, naming the latency medians of long polling and
WebSocket and server CPU per message for SSE, NDJSON and WebSocket; the parent against itself
passes; a bad BASE is refused.

The clone and the two A/B runs are made once per session (realruns.py, fixtures in
conftest.py); test_e2e.py reads the same runs with the plain ``compare`` gate.
"""

from __future__ import annotations

import json

import pytest

from tests._timeouts import scaled

from .realruns import git, run_ab

#: The first test to ask for an A/B run makes it (~35 s on a busy 2-core machine); pytest's
#: default 120 s timeout is too close when both are made in one test's setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(480))]
#: The parent against itself must pass on latency medians, which a test beside it would move:
#: alone (tests/conftest.py). The child's +2 ms is 4-5x a point's median here, more than any
#: neighbour moves it, and its server CPU is judged against the pairs' own noise (+100 us is
#: 2-3x a stream's own cost here): its run shares the machine.
alone = pytest.mark.exclusive


def _worktrees(repo) -> int:
    return git(repo, "worktree", "list").count("\n") + 1


def test_child_with_2ms_delay_fails_against_its_parent(ab_clone, ab_child):
    status, out = ab_child.status, ab_child.output
    last = out.strip().splitlines()[-1]  # the verdict line ends the output
    assert status == 1, out[-4000:]
    assert last.startswith("REGRESSION:"), out[-4000:]
    for transport in ("longpoll", "websocket"):
        # The delay must show in a latency median of every transport, named in the last line.
        rows = "\n".join(line for line in out.splitlines() if line.startswith(transport)
                         and ("_p50_ms" in line or "_p90_ms" in line))
        assert f"{transport} lat_p50_ms +" in last or f"{transport} sent_p50_ms +" in last, \
            f"{last}\n{rows}"
    assert (ab_child.out / "compare.md").read_text().count("FAIL") >= 1
    assert _worktrees(ab_clone) == 1, "the base worktree was not removed"


def test_child_with_100us_of_cpu_per_delivery_fails_naming_server_cpu(ab_clone, ab_child):
    out = ab_child.output
    last = out.strip().splitlines()[-1]
    assert ab_child.status == 1 and last.startswith("REGRESSION:"), out[-4000:]
    for transport in ("sse", "ndjson", "websocket"):
        rows = "\n".join(line for line in out.splitlines() if "cpu_us_per_msg" in line)
        assert f"{transport} server_cpu_us_per_msg +" in last, f"{last}\n{rows}"
    # The child's servers report what they inject (/healthz), so meta.json records it.
    meta = json.loads((ab_child.out / "current" / "meta.json").read_text())
    assert (meta.get("inject") or {}).get("cpu_us") == 100, meta.get("inject")
    assert _worktrees(ab_clone) == 1


@alone
def test_parent_against_itself_passes(ab_clone, ab_same):
    assert ab_same.status == 0, ab_same.output[-4000:]
    assert "OK: no regression" in ab_same.output
    assert _worktrees(ab_clone) == 1


def test_unknown_base_is_refused_clearly(ab_clone, tmp_path):
    result = run_ab(ab_clone, "no-such-branch", tmp_path / "ab")
    assert result.status == 2 and "'no-such-branch' is not a commit" in result.output, \
        result.output


def test_base_whose_servers_do_not_start_fails_clearly(ab_clone, tmp_path):
    # A base commit whose servers need a module this environment lacks.
    git(ab_clone, "checkout", "-q", "-b", "needs-dep", "parent")
    with open(ab_clone / "servers" / "__init__.py", "a", encoding="utf-8") as init:
        init.write("\nimport duplexbench_missing_dependency  # noqa\n")
    git(ab_clone, "commit", "-qam", "needs a dependency")
    git(ab_clone, "checkout", "-q", "child")
    result = run_ab(ab_clone, "needs-dep", tmp_path / "ab")
    assert result.status == 2, result.output[-3000:]
    assert "do not start with this environment" in result.output
    assert "duplexbench_missing_dependency" in result.output
    assert not (tmp_path / "ab" / "base" / "meta.json").exists()  # refused before measuring
