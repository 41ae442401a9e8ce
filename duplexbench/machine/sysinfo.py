"""Machine, software and git metadata for meta.json.

A latency figure means little without the machine and versions that produced
it (pyperf records the same). Everything here is best effort: a missing
/proc file, psutil or git must never stop a benchmark, so each probe returns
None on failure and :func:`collect_metadata` never raises.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

__all__ = ["PACKAGES", "collect_metadata", "cpu_model", "git_info", "package_versions"]

#: Packages whose versions can change a measurement.
PACKAGES = ("aiohttp", "websockets", "httptools", "uvloop", "pandas", "numpy", "locust",
            "matplotlib", "psutil")

_REPO = Path(__file__).resolve().parents[2]


def _safe(probe: Callable[[], Any]) -> Any:
    try:
        return probe()
    except Exception:  # metadata is best effort; a benchmark must not die of it
        return None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        # x86 says "model name"; some ARM kernels say "Hardware" or "Processor".
        if key.strip().lower() in ("model name", "hardware", "processor", "cpu model") \
                and not value.strip().isdigit() and value.strip():
            return value.strip()
    return platform.processor() or None


def _cpu_freq() -> dict[str, float] | None:
    import psutil

    freq = psutil.cpu_freq()
    if freq is None:
        return None
    return {"current_mhz": freq.current, "min_mhz": freq.min, "max_mhz": freq.max}


def _memory_total_gb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 2)
    except Exception:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 2)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=5, check=True,
        # Read-only: `git status` would otherwise refresh (write) the index.
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    ).stdout.strip()


def git_info() -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` for the checkout holding this file, else None."""
    try:
        commit = _git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        # Untracked files (results, caches) do not make the measured code dirty.
        dirty: bool | None = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        dirty = None
    return {"commit": commit, "dirty": dirty}


def collect_metadata() -> dict[str, Any]:
    """Everything meta.json records about the machine and software; never raises."""
    uname = _safe(platform.uname)
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": _safe(package_versions) or {},
        "cpu_model": _safe(cpu_model),
        "cpu_count": _safe(os.cpu_count),
        "cpu_freq": _safe(_cpu_freq),
        "kernel": _safe(platform.release),
        "hostname": _safe(socket.gethostname),
        "os": _safe(lambda: f"{uname.system} {uname.release}" if uname else platform.system()),
        "machine": _safe(platform.machine),
        "memory_total_gb": _safe(_memory_total_gb),
        "git": _safe(git_info),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
