"""What this machine has of what duplexbench relies on, with the fix for each part missing.

Why: a part that is not there used to show up late and scattered: a missing nginx as
three failed ``[proxy]`` points and a stopped run, a missing Chromium as skipped tests
nobody reads. Two tables answer it once, for ``doctor``, for the set-up (``make setup``
installs the Debian packages of :data:`CAPABILITIES` as root) and for every command
that measures points (the runner calls :func:`require` before the first one):

- :data:`CAPABILITIES`: one row per capability, its check (what was found, and the fix
  when it falls short) and the programs (:data:`~.parts.PROGRAMS`) that bring it;
- :data:`NEEDS`: one row per need of a point (``[proxy]`` -> nginx, ``engine =
  "browser"`` -> Chromium, ``broker = "redis"`` -> Redis): a new need is one row.

A check never raises and never installs: it looks (a binary, its version, a limit, a
namespace probe) and says what it saw.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import procs
from ..scenario import LoadPoint, ScenarioError, load_scenario
from .limits import LimitError, check_point, ephemeral_ports, loadgen_layout, nofile_limits
from .netem import detect_netem
from .parts import (
    NODE_MIN_MAJOR,
    find_cc,
    find_chromium,
    find_nginx,
    find_node,
    find_redis,
    first_line,
    node_unavailable,
)

__all__ = [
    "CAPABILITIES",
    "FALLBACK",
    "MISSING",
    "NEEDS",
    "OK",
    "Capability",
    "Finding",
    "MissingParts",
    "Need",
    "check",
    "largest_scenario",
    "needed",
    "report_lines",
    "require",
]

OK, MISSING, FALLBACK = "ok", "MISSING", "fallback"
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SETUP = "make setup"  # installs every part it can (apt as root, npm ci); README "Set-up"


@dataclass(frozen=True)
class Finding:
    """What a check saw: ``state`` (ok, MISSING, or fallback: works another way), what was
    found, and the fix when it is not ok."""

    state: str
    found: str
    fix: str = ""


@dataclass(frozen=True)
class Capability:
    key: str
    title: str
    check: Callable[[], Finding]
    #: Names in parts.PROGRAMS whose Debian packages bring it (the set-up installs them).
    programs: tuple[str, ...] = ()
    #: What relies on it (doctor's line says so when it is missing).
    used_by: str = ""


def _apt(*packages: str) -> str:
    return f"`{SETUP}` as root, or `apt-get install {' '.join(packages)}`"


def _program(find: Callable[[], str | None], version: Callable[[str], str],
             package: str, label: str) -> Finding:
    path = find()
    if path is None:
        return Finding(MISSING, f"{label} not found", _apt(package))
    return Finding(OK, f"{path} ({version(path) or 'version unknown'})")


def _nginx() -> Finding:
    return _program(find_nginx, lambda p: first_line([p, "-v"]).removeprefix("nginx version: "),
                    "nginx", "nginx")


def _chromium() -> Finding:
    found = _program(find_chromium, lambda p: first_line([p, "--version"]), "chromium",
                     "chromium")
    if found.state == OK and importlib.util.find_spec("playwright") is None:
        return Finding(MISSING, f"{found.found}, but the playwright package is missing",
                       "`make install` (pip install -e '.[test]')")
    return found


def _node() -> Finding:
    why = node_unavailable()
    node = find_node()
    if why is None:
        return Finding(OK, f"{node} ({first_line([node, '--version'])}), servers/node/node_modules")
    fix = ("`make node` (npm ci in servers/node)" if node and "node_modules" in why else
           f"Node.js {NODE_MIN_MAJOR} or later: {_apt('nodejs', 'npm')}, then `make node`")
    return Finding(MISSING, why, fix)


def _redis() -> Finding:
    return _program(find_redis, lambda p: first_line([p, "--version"]).split(" sha=")[0],
                    "redis-server", "redis-server")


def _cc() -> Finding:
    return _program(find_cc, lambda p: first_line([p, "--version"]), "gcc", "cc (a C compiler)")


def _read_loop() -> Finding:
    """Whether the load generator's read loop was compiled (clients/readloop.c)."""
    from clients.reader import loop_in_c, readloop

    if readloop is not None:  # built, and not older than clients/readstore.c
        where = "C" if loop_in_c() else "Python (DUPLEXBENCH_READER_C=0)"
        return Finding(OK, f"clients/readloop.c built: the load generator reads in {where}")
    return Finding(FALLBACK, "clients/readloop.c not built: the load generator reads in "
                   "Python (more client CPU per delivery, docs/engine-cost.md)",
                   f"{_apt('gcc')}, then `make setup` (it rebuilds the loop)")


def _curl() -> Finding:
    import shutil

    return _program(lambda: shutil.which("curl"),
                    lambda p: " ".join(first_line([p, "--version"]).split()[:2]), "curl", "curl")


def _tls() -> Finding:
    import shutil

    if shutil.which("openssl") is None:  # the TLS client tests make their certificate with it
        return Finding(MISSING, f"{ssl.OPENSSL_VERSION}; the openssl command is not on PATH",
                       _apt("openssl"))
    try:
        import trustme

        ca = trustme.CA()
        ca.issue_cert("127.0.0.1").configure_cert(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    except Exception as exc:  # any failure here is the finding
        return Finding(MISSING, f"{ssl.OPENSSL_VERSION}; trustme could not issue a certificate "
                       f"({type(exc).__name__}: {exc})", "`make install` (trustme, cryptography)")
    return Finding(OK, f"{ssl.OPENSSL_VERSION}; trustme issued a certificate for 127.0.0.1")


def _netem() -> Finding:
    support = detect_netem()
    if support.available:
        return Finding(OK, "kernel netem in a network namespace")
    return Finding(FALLBACK, f"{support.reason}; [network] mode = \"netem\" uses the delaying "
                   "proxy instead (docs/network.md)",
                   "a kernel with sch_netem (`modprobe sch_netem`), as root")


def largest_scenario(directory: Path = SCENARIOS) -> tuple[str, int]:
    """(file name, subscribers) of the shipped scenario with the most subscribers at a point."""
    best = ("", 0)
    for path in sorted(directory.glob("*.toml")):
        try:
            clients = max((p.clients for p in load_scenario(path).points()), default=0)
        except (ScenarioError, OSError):
            continue  # a broken scenario is `run`'s error to report, not a capability
        if clients > best[1]:
            best = (path.name, clients)
    return best


def _largest_fit() -> tuple[str, int, dict | LimitError]:
    name, clients = largest_scenario()
    layout = loadgen_layout(procs.plan_affinity().server)
    try:
        return name, clients, check_point(clients, transport="websocket", layout=layout)
    except LimitError as exc:
        return name, clients, exc


def _open_files() -> Finding:
    soft, hard = nofile_limits()
    name, clients, fit = _largest_fit()
    have = f"soft {soft:,}, hard {hard:,} (a run raises soft to hard)"
    if isinstance(fit, LimitError) and "open files" in str(fit):
        return Finding(MISSING, f"{have}; scenarios/{name} ({clients:,} subscribers): {fit}",
                       "raise the hard limit (`prlimit --nofile=65536:65536 --pid $$`, "
                       "limits.conf `nofile`, systemd LimitNOFILE)")
    return Finding(OK, f"{have}; enough for scenarios/{name} ({clients:,} subscribers)")


def _ports() -> Finding:
    ports = ephemeral_ports()
    name, clients, fit = _largest_fit()
    have = f"{ports:,} ephemeral ports per source address"
    if isinstance(fit, LimitError) and "ephemeral" in str(fit):
        return Finding(MISSING, f"{have}; scenarios/{name} ({clients:,} subscribers): {fit}",
                       "sysctl -w net.ipv4.ip_local_port_range='1024 65000'")
    addrs = fit.get("source_addrs", ()) if isinstance(fit, dict) else ()
    spread = f" over {len(addrs)} source addresses (127.0.0.x)" if addrs else ""
    return Finding(OK, f"{have}; scenarios/{name} ({clients:,} subscribers) fits{spread}")


def _cores() -> Finding:
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    plan = procs.plan_affinity()
    if plan.server is None or len(allowed) < 2:
        return Finding(FALLBACK, f"{len(allowed) or os.cpu_count()} core(s) allowed: server and "
                       "load generator share them (not pinned apart)",
                       "2 or more cores (taskset / the container's cpuset)")
    return Finding(OK, f"{len(allowed)} cores allowed ({','.join(map(str, allowed))}): "
                   f"server pinned to {plan.server}, load generator to the others")


#: Every capability doctor reports, in its order. A new one is one row.
CAPABILITIES: tuple[Capability, ...] = (
    Capability("nginx", "nginx", _nginx, ("nginx",), "[proxy] scenarios, tests/proxies"),
    Capability("chromium", "Chromium", _chromium, ("chromium",),
               'engine = "browser", the report test'),
    Capability("node", "Node reference", _node, ("node", "npm"), "`stacks`, tests/node"),
    Capability("redis", "Redis", _redis, ("redis-server",), "--workers N --broker redis"),
    Capability("cc", "C compiler", _cc, ("cc",), "tools/floor (the C reader)"),
    Capability("readloop", "C read loop", _read_loop, ("cc",), "the load generator's reads"),
    Capability("curl", "curl", _curl, ("curl",), "the server tests"),
    Capability("tls", "TLS", _tls, ("openssl",), "[server] tls = true, run --tls"),
    Capability("netem", "netem", _netem, (), '[network] mode = "netem"'),
    Capability("nofile", "open files", _open_files, (), "many subscribers per point"),
    Capability("ports", "ephemeral ports", _ports, (), "many subscribers per point"),
    Capability("cores", "cores for pinning", _cores, (), "server and load generator apart"),
)
_BY_KEY = {c.key: c for c in CAPABILITIES}


def check(keys: Iterable[str] | None = None) -> list[tuple[Capability, Finding]]:
    """Each capability (all, or those ``keys``) with what its check found."""
    chosen = CAPABILITIES if keys is None else [_BY_KEY[k] for k in keys]
    return [(c, c.check()) for c in chosen]


# ---------------------------------------------------------------------------
# What a point needs


@dataclass(frozen=True)
class Need:
    """A point that ``applies`` needs capability ``key``; ``why`` says which of its keys asked."""

    key: str
    applies: Callable[[LoadPoint, str, Any], bool]  # (point, the run's --engine, scenario)
    why: str


#: One row per need; ``applies`` gets the point, the run's engine and the scenario.
NEEDS: tuple[Need, ...] = (
    Need("nginx", lambda p, engine, s: p.proxy not in ("", "none"), "[proxy] puts nginx in the path"),
    Need("chromium", lambda p, engine, s: (p.engine or engine) == "browser",
         'engine = "browser" runs the subscribers in headless Chromium'),
    Need("redis", lambda p, engine, s: "redis" in (getattr(p, "broker", ""),
                                                   getattr(getattr(s, "server", None), "broker", "")),
         'broker = "redis" runs the server\'s workers behind Redis'),
)


def needed(points: Sequence[LoadPoint], *, engine: str = "native", scenario: Any = None,
           extra: Iterable[str] = ()) -> dict[str, str]:
    """Capability key -> why, for what ``points`` (and ``extra`` keys) need."""
    found = {key: "asked for" for key in extra}
    for need in NEEDS:
        if need.key not in found and any(need.applies(p, engine, scenario) for p in points):
            found[need.key] = need.why
    return found


class MissingParts(RuntimeError):
    """What the points need and this machine lacks; the message has one line per part."""


def require(points: Sequence[LoadPoint], *, engine: str = "native", scenario: Any = None,
            extra: Iterable[str] = ()) -> None:
    """MissingParts, before anything starts, when a part the points need is not here."""
    wanted = needed(points, engine=engine, scenario=scenario, extra=extra)
    lines = []
    for capability, finding in check(wanted):
        if finding.state == MISSING:
            lines.append(f"{capability.title}: {finding.found} ({wanted[capability.key]}); "
                         f"fix: {finding.fix}")
    if lines:
        raise MissingParts("this run needs what the machine lacks:\n  " + "\n  ".join(lines)
                           + "\n(`python -m duplexbench doctor` checks every part)")


def report_lines(results: Sequence[tuple[Capability, Finding]]) -> list[str]:
    """doctor's output: one line per capability, what was found and, when not ok, the fix."""
    width = max(len(c.title) for c, _ in results)
    lines = []
    for capability, finding in results:
        line = f"{finding.state:<8} {capability.title:<{width}}  {finding.found}"
        if finding.state != OK:
            line += f"; fix: {finding.fix}" + (f" (for {capability.used_by})"
                                               if capability.used_by else "")
        lines.append(line)
    return lines
