"""Child processes of a benchmark: spawn, pin to a core, sample from outside, kill the tree.

Why a module of its own: the runner's figures are only as good as its process
hygiene. A server left over from an earlier point, or a load generator floating
onto the server's core, silently changes what is measured. So every child the
harness starts goes through here: it is pinned (``os.sched_setaffinity``), it
is registered so that an ``atexit`` hook and SIGTERM/SIGHUP handlers can kill
its whole tree (psutil, recursive) whatever way the harness ends, and the
kernel is asked to kill it should the harness die (``PR_SET_PDEATHSIG``, see
:func:`dying_with_parent`) for the one way no hook survives: a SIGKILL.

Sampling from the outside (:class:`Sampler`) lives beside it in
:mod:`duplexbench.procs.sampler`; the package re-exports both.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import psutil

__all__ = [
    "AffinityPlan",
    "Child",
    "Terminated",
    "install_signal_handlers",
    "kill_all",
    "dying_with_parent",
    "kill_procs",
    "kill_tree",
    "pin",
    "plan_affinity",
    "raise_nofile_limit",
    "shielded",
    "spawn",
    "track",
    "tracked",
    "untrack",
]

class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP arrived: handled exactly like Ctrl-C (stop children, mark incomplete)."""


# ---------------------------------------------------------------------------
# Core pinning and limits


@dataclass(frozen=True)
class AffinityPlan:
    """Which core the server and the load generator get (None = not pinned)."""

    server: int | None
    loadgen: int | None
    #: Why pinning is off, for the run's warnings; empty when pinned.
    warning: str = ""

    def to_meta(self) -> dict[str, list[int] | None]:
        return {
            "server": None if self.server is None else [self.server],
            "loadgen": None if self.loadgen is None else [self.loadgen],
        }


def plan_affinity() -> AffinityPlan:
    """Server on the first usable core, load generator on the second.

    Uses the cores this process may run on (a container or ``taskset`` may
    allow fewer than ``os.cpu_count()``), lowest two first.
    """
    if not hasattr(os, "sched_getaffinity"):
        return AffinityPlan(None, None, "this platform cannot pin processes to cores: "
                                        "server and load generator share the CPUs, figures are noisier")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return AffinityPlan(None, None, f"only {len(cpus)} CPU available: server and load generator "
                                        "are not pinned and compete for it; latency includes scheduling")
    return AffinityPlan(cpus[0], cpus[1])


def pin(pid: int, cpu: int | None, *, tree: bool = True) -> bool:
    """Pin ``pid`` (and, by default, its current descendants) to one core."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return False
    pids = [pid]
    if tree:
        try:
            pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            pass
    ok = False
    for each in pids:
        try:
            os.sched_setaffinity(each, {cpu})
            ok = True
        except OSError:
            pass
    return ok


def raise_nofile_limit() -> tuple[int, int]:
    """Soft open-files limit up to the hard limit (children inherit it); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


# ---------------------------------------------------------------------------
# Registry of live children: whatever ends the harness, they end too

#: Tracked children by pid. psutil.Process objects, not bare pids: they remember
#: the start time, so a pid the kernel has since reused is never signalled.
_LIVE: dict[int, psutil.Process] = {}
_LIVE_LOCK = threading.Lock()
_HOOKED = False


def track(pid: int, name: str = "") -> None:
    """Remember a child so :func:`kill_all` (atexit, signals) kills its tree."""
    global _HOOKED
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    with _LIVE_LOCK:
        _LIVE[pid] = proc
        if not _HOOKED:
            atexit.register(kill_all)
            _HOOKED = True


def tracked() -> list[int]:
    """The pids of the children that would be killed if the harness ended now."""
    with _LIVE_LOCK:
        return list(_LIVE)


def untrack(pid: int) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(pid, None)


def kill_all(timeout: float = 3.0) -> None:
    """Kill every tracked child's tree (the atexit hook; also safe to call by hand)."""
    with _LIVE_LOCK:
        tracked = list(_LIVE.values())
        _LIVE.clear()
    for proc in tracked:
        kill_tree(proc, timeout=timeout)


def kill_tree(target: int | psutil.Process, *, timeout: float = 3.0,
              sig: int = signal.SIGTERM) -> list[int]:
    """Signal a process and all its descendants, SIGKILL what is left; return survivors' pids.

    Descendants are listed *before* the parent goes: once it dies they are
    re-parented and psutil can no longer find them from it. Given a
    ``psutil.Process`` whose pid was reused by another program, does nothing.
    """
    try:
        root = target if isinstance(target, psutil.Process) else psutil.Process(target)
        if not root.is_running():
            return []
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    return kill_procs(procs, timeout=timeout, sig=sig)


def kill_procs(procs: list[psutil.Process], *, timeout: float = 3.0,
               sig: int = signal.SIGTERM) -> list[int]:
    """``sig`` to each still-running process, SIGKILL after ``timeout``; survivors' pids."""
    procs = [p for p in procs if _running(p)]
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=timeout)
    # A zombie (exited, not reaped by its parent) holds nothing; only a running process survives.
    return [p.pid for p in alive if _running(p)]


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread, like Ctrl-C.

    Raising (rather than exiting in the handler) lets the runner's ``finally``
    blocks stop children in order and write an ``incomplete`` meta.json.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(f"received {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue  # started under nohup (or told to ignore it): keep it that way
        signal.signal(sig, handler)


@contextlib.contextmanager
def shielded(*, redeliver: bool = True) -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while children are being stopped or results written.

    A Ctrl-C in the middle of cleanup would otherwise abandon a half-stopped
    server or a half-updated meta.json. Every wait inside is bounded, so the
    delay is short; a signal that arrived meanwhile is delivered on the way out
    (``redeliver=False`` drops it: for the shutdown path, already stopping).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held and redeliver:
            signal.raise_signal(held[0])  # now handled as usual (KeyboardInterrupt, Terminated)


# ---------------------------------------------------------------------------
# Spawning

#: Runs between our fork and the real program: asks the kernel for SIGKILL when
#: the harness dies (PR_SET_PDEATHSIG = 1, survives execve), gives up if the
#: harness is already gone, then becomes the real program (same pid). A shim
#: instead of ``preexec_fn``, which may deadlock in a process with threads
#: (the runner has a sampler and pipe readers) and is not allowed by every caller.
_DEATHSIG_SHIM = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, 9)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(125)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def dying_with_parent(command: Sequence[str]) -> list[str]:
    """``command`` wrapped so the process is SIGKILLed when this process dies.

    The one orphan the atexit hook and signal handlers cannot prevent is the
    one left when the harness itself is SIGKILLed (an OOM kill, a CI timeout).
    Linux only; elsewhere the command is returned unchanged. Spawn from a
    thread that outlives the child (the main thread): the kernel sends the
    signal when the spawning *thread* exits.
    """
    if not sys.platform.startswith("linux"):
        return list(command)
    # -S: no site import; the shim needs only the standard library and must be quick.
    return [sys.executable, "-S", "-c", _DEATHSIG_SHIM, str(os.getpid()), *command]


class Child:
    """A spawned, tracked child process. ``stop()`` ends its whole tree."""

    def __init__(self, popen: subprocess.Popen, name: str) -> None:
        self.popen = popen
        self.name = name
        #: Descendants seen so far (see :meth:`remember_descendants`).
        self._descendants: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def remember_descendants(self) -> None:
        """Note the current descendants (call now and then while it runs).

        When a child exits first, its own children are re-parented and can no
        longer be found from it; remembered ones can still be stopped.
        """
        if self.popen.poll() is not None:
            return
        try:
            for proc in psutil.Process(self.pid).children(recursive=True):
                self._descendants.setdefault(proc.pid, proc)
        except psutil.Error:
            pass

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the tree, SIGKILL after ``timeout``; returns the exit code."""
        self.remember_descendants()
        tree = dict(self._descendants)
        # Not yet reaped (poll() is None) means the pid is still ours to signal;
        # once reaped it may belong to someone else, so only leftovers are killed.
        if self.popen.poll() is None:
            try:
                tree[self.pid] = psutil.Process(self.pid)
            except psutil.Error:
                pass
        kill_procs(list(tree.values()), timeout=timeout)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill_procs already SIGKILLed
            self.popen.kill()
            code = self.popen.wait()
        untrack(self.pid)
        return code


def spawn(
    command: Sequence[str],
    *,
    name: str,
    cpu: int | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | object = subprocess.DEVNULL,
    stderr: int | object = subprocess.DEVNULL,
    text: bool = True,
) -> Child:
    """Start ``command`` in its own session, pinned to ``cpu``, tracked, dying with us.

    Its own session: Ctrl-C in a terminal reaches only the harness, which then
    stops children in order instead of everything dying at once mid-write.
    Dies with the harness (see :func:`dying_with_parent`).
    """
    popen = subprocess.Popen(
        dying_with_parent(command),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        text=text,
        start_new_session=True,
    )
    track(popen.pid, name)
    # Popen returns after exec: the interpreter is still starting and has no
    # children yet, so pinning here covers everything it will spawn (inherited).
    pin(popen.pid, cpu)
    return Child(popen, name)
