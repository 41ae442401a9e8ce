"""The set-up: install the Debian programs the suite starts, where they are missing.

Why in the harness and not only in CI's script: a contributor's ``make test`` and a user's
``make bench`` must run on a new machine what CI runs (nginx, Chromium, Node.js, Redis,
gcc, curl), or a quarter of the suite skips unseen. ``python -m duplexbench doctor
--install`` (what ``make setup`` calls) looks for each program (:data:`~.parts.PROGRAMS`),
and only when one is missing: as root with apt, ``apt-get update`` once, then one ``apt-get
install`` of every missing package; otherwise one line naming the command to run. With
everything present it runs no command at all (a presence check costs less than a stamp
file, and unlike one it sees an ``apt-get remove``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .parts import PROGRAMS

__all__ = ["SetupResult", "install_missing", "missing_programs"]

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
#: apt on a fresh machine downloads Chromium's dependencies: minutes, not hours.
APT_TIMEOUT_S = 900


@dataclass(frozen=True)
class SetupResult:
    """What the set-up did: packages installed, still missing, and the one line to print."""

    installed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    message: str = ""


def missing_programs(names: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(program, Debian package) of each program (all, or ``names``) not on this machine."""
    wanted = None if names is None else set(names)
    return [(p.name, p.package) for p in PROGRAMS
            if (wanted is None or p.name in wanted) and p.find() is None]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=APT_TIMEOUT_S,
                          env={**os.environ, **APT_ENV})


def install_missing(names: Iterable[str] | None = None, *,
                    run: Callable[[list[str]], subprocess.CompletedProcess] = _run,
                    is_root: bool | None = None, apt: str | None = None) -> SetupResult:
    """Install the Debian packages of the missing programs (all, or ``names``) when possible.

    ``run``, ``is_root`` and ``apt`` default to this machine's (tests give their own).
    """
    missing = missing_programs(names)
    if not missing:
        return SetupResult()
    packages = tuple(dict.fromkeys(package for _, package in missing))
    programs = ", ".join(name for name, _ in missing)
    command = f"apt-get install {' '.join(packages)}"
    root = os.geteuid() == 0 if is_root is None else is_root
    apt = shutil.which("apt-get") if apt is None else apt
    if not root or not apt:
        why = "this is not root" if not root else "apt-get is not here"
        then = " (then `make node`)" if {"node", "npm"} & {name for name, _ in missing} else ""
        return SetupResult(missing=packages, message=(
            f"duplexbench set-up: {programs} missing and {why}: run `sudo {command}`{then}; "
            "until then what needs them is skipped, saying why"))
    update = run([apt, "update", "-qq"])
    done = run([apt, "install", "-y", "-qq", *packages])
    still = tuple(dict.fromkeys(package for _, package in missing_programs(names)))
    if done.returncode != 0 or still:
        tail = (done.stderr or done.stdout or update.stderr).strip().splitlines()[-3:]
        said = " / ".join(tail) or f"exit {done.returncode}"
        return SetupResult(
            installed=tuple(p for p in packages if p not in still), missing=still,
            message=(f"duplexbench set-up: `{command}` failed ({said}): "
                     f"{', '.join(still) or programs} still missing; "
                     "what needs them is skipped, saying why"))
    return SetupResult(installed=packages,
                       message=f"duplexbench set-up: installed {', '.join(packages)} ({programs})")
