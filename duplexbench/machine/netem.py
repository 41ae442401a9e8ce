"""Does this kernel have netem? Asked in a throwaway namespace, answered with a reason.

Why in machine/: it is a fact about the machine, which ``doctor`` reports beside the
other capabilities and the network path (:mod:`duplexbench.netem.path`) acts on (netem
when available, the delaying proxy otherwise). Many machines (these included:
"Specified qdisc kind is unknown") lack the ``sch_netem`` module, so :func:`detect_netem`
tries it in a fresh namespace and returns a reason instead of raising.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["NetemSupport", "detect_netem"]

_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class NetemSupport:
    available: bool
    reason: str  # "available" or "unavailable: <why>"


def _run(*args: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


_DETECTED: NetemSupport | None = None


def detect_netem(refresh: bool = False) -> NetemSupport:
    """Can this machine put netem on a link in a namespace we create? Never raises."""
    global _DETECTED
    if _DETECTED is not None and not refresh:
        return _DETECTED
    _DETECTED = _detect()
    return _DETECTED


def _detect() -> NetemSupport:
    if not sys.platform.startswith("linux"):
        return NetemSupport(False, f"unavailable: netem is Linux-only (platform {sys.platform})")
    if os.geteuid() != 0:
        return NetemSupport(False, "unavailable: network namespaces and tc need root")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return NetemSupport(False, f"unavailable: `{tool}` (iproute2) is not installed")
    ns = f"dbench-probe-{os.getpid()}-{next(_counter)}"
    try:
        made = _run("ip", "netns", "add", ns)
        if made.returncode != 0:
            return NetemSupport(False, f"unavailable: `ip netns add` failed: {made.stderr.strip()}")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        probe = _run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "10ms")
        if probe.returncode != 0:
            why = (probe.stderr or probe.stdout).strip().splitlines()
            return NetemSupport(
                False,
                "unavailable: `tc qdisc add dev lo root netem delay 10ms` in a fresh namespace "
                f"answered {why[0] if why else f'exit {probe.returncode}'!r} (no sch_netem in this kernel)",
            )
        return NetemSupport(True, "available")
    except (OSError, subprocess.SubprocessError) as exc:
        return NetemSupport(False, f"unavailable: probing failed: {exc}")
    finally:
        try:
            _run("ip", "netns", "del", ns)
        except (OSError, subprocess.SubprocessError):
            pass
