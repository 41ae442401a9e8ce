"""Where the programs duplexbench starts besides Python are, or why they are not here.

nginx (the ``[proxy]`` table), Chromium (the browser engine), Node.js (the reference
server), Redis (multi-worker servers), a C compiler (tools/floor's reader) and curl (the
server tests; openssl, the certificate of a TLS test) are Debian's programs, not Python packages: pip cannot bring them. Every
part that starts one asks here, and so do ``doctor`` (:mod:`.doctor`), the set-up that
installs the missing ones (:mod:`.setup`) and the tests' skip reasons, so all of them
agree on what "installed" means. :data:`PROGRAMS` is the table: program, Debian package,
finder; a new program is one row.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHROMIUM",
    "NGINX",
    "NODE_DIR",
    "NODE_MIN_MAJOR",
    "PROGRAMS",
    "Program",
    "REDIS_SERVER",
    "find_cc",
    "find_chromium",
    "find_nginx",
    "find_node",
    "find_redis",
    "first_line",
    "missing_packages",
    "node_unavailable",
]

#: Where Debian's packages put the binaries (named in messages). The finders search PATH
#: alone, so PATH decides what a run, a test or doctor sees (a test hides nginx that way).
NGINX = "/usr/sbin/nginx"
CHROMIUM = "/usr/bin/chromium"
REDIS_SERVER = "/usr/bin/redis-server"
#: The Node.js reference server (servers/node) and the oldest Node.js it runs on.
NODE_DIR = Path(__file__).resolve().parents[2] / "servers" / "node"
NODE_MIN_MAJOR = 20


def _executable(path: str | None) -> str | None:
    return path if path and os.access(path, os.X_OK) else None


def find_nginx() -> str | None:
    """The nginx binary on PATH (Debian's is /usr/sbin/nginx), or None."""
    return shutil.which("nginx")


def find_chromium() -> str | None:
    """Debian's Chromium on PATH (``DUPLEXBENCH_CHROMIUM`` overrides), or None."""
    override = os.environ.get("DUPLEXBENCH_CHROMIUM")
    if override:
        return _executable(override)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def find_redis(binary: str | None = None) -> str | None:
    """``binary`` if given and executable, else redis-server on PATH; or None."""
    return _executable(binary) or shutil.which("redis-server")


def find_node() -> str | None:
    return shutil.which("node")


def find_cc() -> str | None:
    """The C compiler tools/floor/run.sh builds its reader with (``cc``, Debian's gcc)."""
    return shutil.which("cc") or shutil.which("gcc")


def first_line(argv: list[str], timeout: float = 10.0) -> str:
    """The first non-empty line ``argv`` prints (stdout, else stderr), "" when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in (done.stdout + "\n" + done.stderr).splitlines():
        if line.strip():
            return line.strip()
    return ""


def node_unavailable() -> str | None:
    """Why the Node reference cannot run here, or None when it can."""
    node = find_node()
    if node is None:
        return f"node is not on PATH (Node.js {NODE_MIN_MAJOR} or later is needed)"
    version = first_line([node, "--version"])
    match = re.match(r"v(\d+)\.", version)
    if not match or int(match.group(1)) < NODE_MIN_MAJOR:
        return f"node {version or '?'} is too old: Node.js {NODE_MIN_MAJOR} or later is needed"
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        return "servers/node/node_modules is missing: run `make node` (npm ci)"
    return None


@dataclass(frozen=True)
class Program:
    """One program the suite starts: its name, the Debian package that brings it, its finder."""

    name: str
    package: str
    find: Callable[[], str | None]


#: Every program the suite starts besides Python (``make setup`` installs the missing ones).
PROGRAMS: tuple[Program, ...] = (
    Program("nginx", "nginx", find_nginx),
    Program("chromium", "chromium", find_chromium),
    Program("curl", "curl", lambda: shutil.which("curl")),
    Program("node", "nodejs", find_node),
    Program("npm", "npm", lambda: shutil.which("npm")),
    Program("redis-server", "redis-server", find_redis),
    Program("cc", "gcc", find_cc),
    Program("openssl", "openssl", lambda: shutil.which("openssl")),
)


def missing_packages(names: tuple[str, ...] | None = None) -> list[str]:
    """Debian packages of the programs (all, or those ``names``) that are not here."""
    return [p.package for p in PROGRAMS
            if (names is None or p.name in names) and p.find() is None]
