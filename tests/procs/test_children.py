"""duplexbench.procs.children: no child survives kill_tree, the sampler keeps its rate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from duplexbench import procs

TIMEOUT_SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


# A child that starts a grandchild in the *same* session, prints the
# grandchild's pid, then waits: the tree kill_tree has to find and end.
TREE = """
import subprocess, sys, time
g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(g.pid, flush=True)
time.sleep(60)
"""

# Ignores SIGTERM: kill_tree must escalate to SIGKILL.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
g = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print(g.pid, flush=True)
time.sleep(60)
"""

#: Says "ready" once Python runs (a sample before that would see the process mid-exec:
#: 0.2 MiB, seen once on a fresh machine), then spins for 5 s.
BUSY = ("import time\nprint('ready', flush=True)\nend = time.monotonic() + 5\n"
        "while time.monotonic() < end: pass\n")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("script", [TREE, STUBBORN], ids=["polite", "ignores-sigterm"])
def test_kill_tree_leaves_no_survivor(script):
    child = procs.spawn([sys.executable, "-c", script], name="tree", stdout=subprocess.PIPE)
    try:
        grandchild = int(child.popen.stdout.readline())
        assert psutil.pid_exists(grandchild) and not _gone(grandchild)
        survivors = procs.kill_tree(child.pid, timeout=scaled(1.0))
        assert survivors == []
        child.wait(scaled(5))
        deadline = time.monotonic() + scaled(5)
        while not _gone(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)  # the grandchild is reparented; init reaps it
        assert _gone(grandchild), f"grandchild {grandchild} survived"
        assert _gone(child.pid)
    finally:
        procs.kill_tree(child.pid, timeout=0.5)
        procs.untrack(child.pid)


def test_child_is_pinned_when_two_cores():
    plan = procs.plan_affinity()
    if plan.loadgen is None:
        pytest.skip("fewer than 2 usable CPUs")
    child = procs.spawn([sys.executable, "-c", "import time; time.sleep(30)"], name="pinned", cpu=plan.loadgen)
    try:
        assert psutil.Process(child.pid).cpu_affinity() == [plan.loadgen]
    finally:
        child.stop(timeout=scaled(2))
    assert child.pid not in procs.tracked()


def test_kill_all_kills_tracked_children():
    child = procs.spawn([sys.executable, "-c", TREE], name="tracked", stdout=subprocess.PIPE)
    grandchild = int(child.popen.stdout.readline())
    procs.kill_all(timeout=scaled(1))
    child.wait(scaled(5))
    deadline = time.monotonic() + scaled(5)
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild)


def test_sampler_rate_and_increasing_cpu():
    child = procs.spawn([sys.executable, "-c", BUSY], name="busy", stdout=subprocess.PIPE)
    try:
        assert child.popen.stdout.readline().strip() == "ready"
        sampler = procs.Sampler({"busy": child.pid}, hz=20).start()
        sampler.phase = "warmup"
        time.sleep(0.5)
        sampler.phase = "measure"
        time.sleep(1.5)
        samples = sampler.stop()
    finally:
        child.stop(timeout=scaled(2))
    assert samples and {s.process for s in samples} == {"busy"}
    span = samples[-1].t_s - samples[0].t_s
    assert span > 1.5, samples[:3]
    rate = (len(samples) - 1) / span
    assert rate >= 10, f"{rate:.1f} samples/s"
    cpu = [s.cpu_user_s + s.cpu_system_s for s in samples]
    assert all(b >= a for a, b in zip(cpu, cpu[1:])), "cumulative CPU went down"
    assert cpu[-1] > cpu[0], "a busy child used no CPU"
    assert [s.phase for s in samples][0] in ("start", "warmup"), samples[0]
    assert samples[-1].phase == "measure", samples[-1]
    odd = [s for s in samples if not (s.rss_mib > 1 and s.open_files >= 1)]
    assert not odd, odd[:3]
    # schedstat: nanosecond CPU, never decreasing, agreeing with the ticks to a few ticks,
    # and finer than a tick (a busy process's figures are not multiples of 10 ms).
    sched = [s.cpu_sched_s for s in samples]
    assert all(b >= a for a, b in zip(sched, sched[1:])), "schedstat CPU went down"
    used, ticks = sched[-1] - sched[0], cpu[-1] - cpu[0]
    assert abs(used - ticks) < 0.05 + 0.1 * ticks, (used, ticks)
    assert any(abs(v * 100 - round(v * 100)) > 1e-6 for v in sched), sched[:5]
    times = [s.t_s for s in samples]
    assert times == sorted(times)


def test_sampler_counts_connections_of_a_child():
    # A child holding 5 loopback TCP connection pairs (10 sockets + listener).
    script = (
        "import socket, sys, time\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\n"
        "keep = []\n"
        "for _ in range(5):\n"
        "    c = socket.create_connection(s.getsockname()); a, _ = s.accept(); keep += [c, a]\n"
        "print('ok', flush=True); time.sleep(30)\n"
    )
    child = procs.spawn([sys.executable, "-c", script], name="conns", stdout=subprocess.PIPE)
    try:
        assert child.popen.stdout.readline().strip() == "ok"
        sampler = procs.Sampler({"conns": child.pid}, hz=20).start()
        time.sleep(0.3)
        samples = sampler.stop()
    finally:
        child.stop(timeout=scaled(2))
    assert samples[-1].connections == 11
    assert procs.count_socket_fds(child.pid) == 0  # gone: counts nothing, raises nothing


def test_raise_nofile_limit():
    soft, hard = procs.raise_nofile_limit()
    import resource

    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
    assert soft >= 1024 or soft == hard


def test_one_cpu_means_no_pinning_and_a_warning(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    plan = procs.plan_affinity()
    assert plan.server is None and plan.loadgen is None
    assert "1 CPU" in plan.warning
    assert plan.to_meta() == {"server": None, "loadgen": None}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 2, 7})
    plan = procs.plan_affinity()
    assert (plan.server, plan.loadgen, plan.warning) == (2, 5, "")


def test_dying_with_parent_shim_keeps_pid_and_arguments():
    child = procs.spawn([sys.executable, "-c", "import os, sys; print(os.getpid(), sys.argv[1:])",
                         "a b", "--c"], name="shim", stdout=subprocess.PIPE)
    out, _ = child.popen.communicate(timeout=scaled(10))
    assert out.split(maxsplit=1) == [str(child.pid), "['a b', '--c']\n"]
    child.stop()


def test_shielded_holds_a_signal_until_cleanup_is_done():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with procs.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("cleanup finished")  # not interrupted half-way
    assert done == ["cleanup finished"]
    with procs.shielded(redeliver=False):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
