"""Fixtures shared by every test: a real server process on a loopback port; runs without the
TCP echo calibration; a module's tests on one xdist worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from duplexbench.procs.server import ServerProcess
from duplexbench.runner.session import SKIP_CALIBRATION_ENV

# Runs made by the tests (in this process and in the commands they start) skip the TCP echo
# calibration: no test of a run reads its figures; tests/runner/test_runner.py's end-to-end
# run and tests/machine/test_calibration.py measure it for real.
os.environ[SKIP_CALIBRATION_ENV] = "1"


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    """Each test starts with Python's own SIGINT, SIGTERM and SIGHUP handling and leaves it
    so: a command run in this process (run_command.main installs handlers), or an earlier
    module in the same xdist worker, must not decide how the next test's signals (and those
    of the commands it starts: an ignored signal is inherited) are handled."""
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL,
                signal.SIGHUP: signal.SIG_DFL}
    saved = {sig: signal.signal(sig, handler) for sig, handler in defaults.items()}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def start_server():
    """``start_server(transport="all", args=[...], env={...})`` -> running ServerProcess."""
    started: list[ServerProcess] = []

    def start(transport: str = "all", args=(), env=None) -> ServerProcess:
        server = ServerProcess(transport, args=list(args), env=env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server) -> ServerProcess:
    """A server with every transport mounted, short heartbeats for quick tests."""
    return start_server("all", args=["--heartbeat", "1", "--ping-interval", "2", "--ping-timeout", "2"])


# ---------------------------------------------------------------------------
# Parallel runs (pytest-xdist, `make test`: -n 4): a module's tests on one worker (its
# module-scoped server is started once), and the tests marked ``exclusive`` alone on the
# machine: they judge timing figures (latency medians, recovery, transit times) that a test
# running beside them would move. An exclusive test waits for the tests running beside it to
# end, and the other workers idle while it runs; so the exclusive tests run back to back, at
# the start, on one worker (one work unit, below), before any long test has begun elsewhere:
# queued behind a minute-long test on another worker, one used to idle two workers for that
# minute. Then the longest modules first, so that a short one ends the run, not a long one;
# the parent-against-itself A/B run last (LATE_TESTS).

#: Modules scheduled as one work unit with the first: test_e2e.py shares test_ab.py's
#: session-scoped A/B runs (made once); the others hold the remaining exclusive tests.
SHARED_SCOPE = {module: "tests/compare/test_ab.py" for module in (
    "tests/compare/test_e2e.py", "tests/clients/test_clients_loadgen.py",
    "tests/netem/test_transits.py", "tests/netem/test_proxy.py")}
#: The tests of the parent-against-itself A/B run (fixture ``ab_same``): one work unit, the
#: last, so the run is made once, alone, at the end of the session. At its start, in fresh
#: clones, it flagged long polling 2 times in 3 (+9.7 % server CPU; +21 % latency median, +17 %
#: server CPU), and never in the middle or at the end of a session.
LATE_SCOPE = "late: the parent against itself"
LATE_TESTS = frozenset({"tests/compare/test_ab.py::test_parent_against_itself_passes",
                        "tests/compare/test_e2e.py::test_same_build_fresh_runs_pass"})


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        """One work unit per module (classes included), SHARED_SCOPE merged, in the
        collection's order (``--no-loadscope-reorder``: the order below)."""

        def _split_scope(self, nodeid: str) -> str:
            if nodeid in LATE_TESTS:
                return LATE_SCOPE
            module = nodeid.split("::", 1)[0]
            return SHARED_SCOPE.get(module, module)

    config.option.loadscopereorder = False  # keep the order pytest_collection_modifyitems made
    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Exclusive tests first, then the modules with ``slow`` or ``exclusive`` tests (stable
    otherwise), LATE_TESTS last: the exclusive unit starts at once and runs its exclusive
    tests in a row; the late unit is handed out last."""
    late = {item.nodeid for item in items if "ab_same" in getattr(item, "fixturenames", ())}
    assert late <= LATE_TESTS, f"tests of the ab_same run missing from LATE_TESTS: {late - LATE_TESTS}"
    heavy = {item.module.__name__ for item in items
             if item.get_closest_marker("slow") or _exclusive(item)}
    items.sort(key=lambda item: (item.nodeid in LATE_TESTS, not _exclusive(item),
                                 item.module.__name__ not in heavy))


def _lock(path: Path, mode: int):
    import fcntl

    handle = open(path, "a+")  # noqa: SIM115 (closed by _unlock)
    fcntl.flock(handle, mode)
    return handle


def _unlock(handle) -> None:
    import fcntl

    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


#: The turnstile and lock an exclusive test keeps for the exclusive test after it (xdist).
_kept_alone: tuple | None = None


def _exclusive(item) -> bool:
    return item is not None and item.get_closest_marker("exclusive") is not None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under xdist, a readers-writer lock over setup, call and teardown (module and session
    fixtures are made and ended there too): every test holds it shared, an ``exclusive`` one
    alone. A turnstile lets a waiting exclusive test in before new shared holders; an
    exclusive test followed by another keeps both for it, so no shared test slips between."""
    global _kept_alone
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:  # one process: every test is alone already
        yield
        return
    import fcntl
    import tempfile

    base = Path(tempfile.gettempdir()) / f"duplexbench-tests-{run}"
    exclusive = _exclusive(item)
    if _kept_alone is not None:  # the exclusive test before this one kept them
        turnstile, held = _kept_alone
        _kept_alone = None
    else:
        turnstile = _lock(base.with_suffix(".turnstile"), fcntl.LOCK_EX)
        try:
            held = _lock(base.with_suffix(".lock"), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                _unlock(turnstile)
    try:
        yield
    finally:
        if exclusive and _exclusive(nextitem):
            _kept_alone = (turnstile, held)
        else:
            _unlock(held)
            if exclusive:
                _unlock(turnstile)
