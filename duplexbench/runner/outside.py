"""Where the measured server comes from, for ``run`` and ``capacity``: outside servers and TLS.

- ``--server-url URL`` measures a server someone else started (any
  implementation of servers/README.md). The probe (:mod:`duplexbench.probe`)
  runs first and a server that breaks the contract is refused (``--no-probe``
  skips it; the run then says so in meta.json). Its CPU and memory are sampled
  only with ``--server-pid PID``; pinning is never touched. Without a pid the
  server columns stay empty (never zero), ``server_measured`` is false and
  meta.json / the report say why.
- TLS: ``[server] tls = true`` (or ``[false, true]``, a sweep) and ``--tls``
  make the spawned servers serve https/wss with a certificate generated for
  the run (:mod:`duplexbench.tls`, into ``RUN_DIR/tls/``); every client
  verifies it (LoadSpec ``ca_file``). An outside https server needs
  ``--ca-file`` unless its certificate chains to the system store.

The commands call :func:`add_arguments` and :func:`server_setup`; the setup's
:class:`ServerExtension` is the first extension of the run's points.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..scenario import LoadPoint, Scenario
from ..scenario.http import OUTSIDE_STACK
from .extension import PointExtension, Stage
from .outcome import PointFailed
from .target import ExternalTarget, ServerHandle

#: The probe's rule for WebSocket over HTTP/2 (duplexbench/probe/rules_h2.py).
RFC8441_RULE = "h2.ws-rfc8441"

__all__ = ["ServerExtension", "ServerSetup", "SetupError", "VerifiedExternalTarget",
           "add_arguments", "server_setup"]


class SetupError(Exception):
    """The server cannot be used (probe failed, bad flags); the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the server (default: a fresh `python -m servers` per point)")
    group.add_argument("--server-url", metavar="URL",
                       help="measure a server already running at http(s)://HOST:PORT")
    group.add_argument("--server-pid", type=int, metavar="PID",
                       help="its process id: sample its CPU and memory (pinning is not touched)")
    group.add_argument("--no-probe", action="store_true",
                       help="do not check the outside server against the contract first")
    group.add_argument("--ca-file", metavar="PEM", default="",
                       help="CA certificate that signed the outside https server's certificate")
    group.add_argument("--tls", action="store_true",
                       help="spawned servers serve https/wss (certificate generated for the run)")


def _healthz(url: str, ca_file: str, timeout: float = 3.0) -> dict:
    context = ssl.create_default_context(cafile=ca_file or None) if url.startswith("https:") else None
    with urllib.request.urlopen(url + "/healthz", timeout=timeout, context=context) as response:
        data = json.loads(response.read().decode("utf-8"))
    return data if isinstance(data, dict) else {}


@dataclass
class VerifiedExternalTarget(ExternalTarget):
    """An outside server; /healthz is checked over TLS with ``ca_file`` when it is https."""

    ca_file: str = ""

    @contextlib.contextmanager
    def open(self, ctx: Any) -> Iterator[ServerHandle]:
        url = self.url.rstrip("/")
        try:
            _healthz(url, self.ca_file)
        except (OSError, ValueError) as exc:
            raise PointFailed(f"no server answers {url}/healthz: {exc}") from None
        (ctx.point_dir / "server.log").write_text(
            f"outside server {url} (not started by duplexbench; no log)\n", encoding="utf-8")
        yield ServerHandle(url=url, pid=self.pid)


class ServerExtension(PointExtension):
    """Where the measured server comes from, as the row and meta.json say it: the ``tls`` and
    ``server_measured`` columns, meta.json ``server`` / ``tls`` / ``probe``; for spawned TLS
    points, the run's certificate (flags for the server, the CA for every client)."""

    name = "server"
    stage = Stage.BEFORE_SERVER

    def __init__(self, meta: dict, *, measured: bool = True,
                 tls_for: Callable[[LoadPoint], bool] = lambda point: bool(point.tls),
                 tls_dir: Path | None = None, ca_file: str = "") -> None:
        self._meta = meta
        self.measured = measured
        self.tls_for = tls_for
        #: Spawned TLS servers: where the run's certificate is made (on the first TLS point).
        self.tls_dir = tls_dir
        #: An outside server's CA (--ca-file); "" = the system store.
        self.ca_file = ca_file
        #: An outside server that passed the probe's RFC 8441 rule: its WebSocket points of
        #: http = "2" open over HTTP/2 (extended CONNECT), as the Node reference's do.
        self.rfc8441 = False
        self._files: Any = None

    def files(self):
        """The run's certificate and CA (trustme), made once."""
        if self._files is None:
            from ..tls import make_certificates

            self._files = make_certificates(self.tls_dir)
        return self._files

    def _spawned_tls(self, point: LoadPoint) -> bool:
        return self.tls_dir is not None and self.tls_for(point)

    def _server_tls(self, point: LoadPoint) -> bool:
        """Whether the spawned server itself serves TLS: not behind nginx, which then
        terminates TLS with the run's certificate (a deployment's front; the upstream
        stays cleartext HTTP/1.1 keep-alive)."""
        return self._spawned_tls(point) and getattr(point, "proxy", "none") == "none"

    def meta(self) -> dict:
        return self._meta

    def server_args(self, point: LoadPoint) -> list[str]:
        return self.files().server_args() if self._server_tls(point) else []

    def spec_fields(self, point: LoadPoint) -> dict:
        if self._spawned_tls(point):
            return {"ca_file": self.files().ca_file}
        return {"ca_file": self.ca_file} if self.ca_file else {}

    @contextlib.contextmanager
    def open(self, ctx: Any) -> Iterator[None]:
        if self._server_tls(ctx.point):  # the harness checks the https server's /healthz with it
            ctx.ca_file = self.files().ca_file
        if self._spawned_tls(ctx.point):  # nginx in front terminates TLS with these
            ctx.state["tls_files"] = self.files()
        yield

    def contribute(self, ctx: Any, row: dict, data: Any) -> dict:
        return {"tls": self.tls_for(ctx.point), "server_measured": self.measured}

    def table(self, rows: list[dict], columns: list) -> tuple[list[dict], list]:
        """A ``tls`` column when some point ran over TLS."""
        from ..console import Column, insert_column

        if any(str(row.get("tls")) == "True" for row in rows):
            columns = insert_column(columns, Column("tls", "tls", "{}"))
        return rows, columns


@dataclass
class ServerSetup:
    """What the flags decided: the scenario (TLS applied), the target (None: a fresh spawned
    server per point) and the extension that records it."""

    scenario: Scenario
    extension: ServerExtension
    target: Any = None


def _with_tls(scenario: Scenario, values: tuple[bool, ...]) -> Scenario:
    server = {**dataclasses.asdict(scenario.server), "tls": list(values)}
    return scenario.with_overrides(server=server)


def server_setup(args: argparse.Namespace, scenario: Scenario, run_dir: Path, console) -> ServerSetup:
    """Decide the target from the flags; probe an outside server. Raises SetupError."""
    if args.server_url:
        return _outside(args, scenario, run_dir, console)
    if args.server_pid or args.no_probe or args.ca_file:
        raise SetupError("--server-pid, --no-probe and --ca-file go with --server-url")
    if args.tls:
        scenario = _with_tls(scenario, (True,))
    meta: dict[str, Any] = {"server": {"kind": "spawned", "measured": True}}
    if not any(scenario.server.tls):
        return ServerSetup(scenario, ServerExtension(meta))
    tls_dir = Path(run_dir) / "tls"
    meta["tls"] = {"certificate": "generated for this run (trustme), in tls/",
                   "ca_file": str(tls_dir / "ca.pem"), "verified_by_clients": True}
    # --tls: every point (capacity's points carry no tls flag)
    return ServerSetup(scenario, ServerExtension(
        meta, tls_for=lambda point: bool(point.tls or args.tls), tls_dir=tls_dir))


def _outside(args, scenario: Scenario, run_dir: Path, console) -> ServerSetup:
    url = args.server_url.rstrip("/")
    https = url.startswith("https://")
    if not (https or url.startswith("http://")):
        raise SetupError(f"--server-url {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    if args.tls:
        raise SetupError("--tls starts our servers with TLS; an outside server is https:// already")
    tls = tuple(scenario.server.tls)
    if len(tls) > 1:
        raise SetupError(f"{scenario.name} sweeps [server] tls = {list(tls)}, but an outside server is "
                         "either http or https: run it once per URL")
    if tuple(scenario.server.workers) != (1,) or tuple(scenario.server.broker) != ("none",):
        raise SetupError(f"{scenario.name} sets [server] workers / broker, which start our servers "
                         "that way; an outside server runs what it runs (its /healthz 'workers' "
                         "is recorded): remove those keys to measure it")
    if tls != (https,):
        scenario = _with_tls(scenario, (https,))
    try:
        health = _healthz(url, args.ca_file)
    except (OSError, ValueError) as exc:
        hint = " (an https server signed by a private CA needs --ca-file)" if https else ""
        raise SetupError(f"no server answers {url}/healthz: {exc}{hint}") from None
    measured = args.server_pid is not None
    server_meta: dict[str, Any] = {
        "kind": "external", "url": url, "pid": args.server_pid, "measured": measured,
        "pinning": "not touched: the server runs where it was started",
        "healthz": health,
    }
    if not measured:
        server_meta["not_measured"] = ("the server was started outside duplexbench and no "
                                       "--server-pid was given, so its CPU and memory were not "
                                       "sampled; the server columns are empty")
    meta: dict[str, Any] = {"server": server_meta}
    if https:
        meta["tls"] = {"certificate": "the outside server's", "ca_file": args.ca_file or "system store",
                       "verified_by_clients": True}
    if "2" in scenario.http and not https:
        raise SetupError(f"{scenario.name} sweeps http = {list(scenario.http)}: HTTP/2 to an "
                         "outside server is measured over https (ALPN h2); a cleartext server's "
                         "h2c port is not known here: give its https URL, or http = \"1.1\"")
    meta["probe"] = _probe(url, args, run_dir, console, scenario.transports,
                           h2=_h2_rules(scenario, https))
    # Its points run direct at every HTTP version the scenario sweeps (the stack column says
    # "outside"; `run` loaded the file so already, capacity's scenario is made here);
    # WebSocket goes over HTTP/2 only where the probe found RFC 8441.
    scenario = dataclasses.replace(scenario, server=dataclasses.replace(
        scenario.server, stack=(OUTSIDE_STACK,)))
    extension = ServerExtension(meta, measured=measured, tls_for=lambda point: https,
                                ca_file=args.ca_file)
    extension.rfc8441 = bool(meta["probe"].get("rfc8441"))
    return ServerSetup(scenario, extension,
                       VerifiedExternalTarget(url, args.server_pid, ca_file=args.ca_file))


def _h2_rules(scenario: Scenario, https: bool) -> str:
    """The probe's HTTP/2 rules for a scenario with ``http = "2"`` (docs/http2.md): required
    over https (ALPN h2), where offered over cleartext (h2c needs its own URL)."""
    if "2" not in getattr(scenario, "http", ("1.1",)):
        return ""
    return "on" if https else "auto"


def _probe(url: str, args, run_dir: Path, console, transports, h2: str = "") -> dict:
    if args.no_probe:
        console.warn(f"not probing {url} (--no-probe): results assume it follows the contract")
        return {"ran": False, "why": "--no-probe"}
    from ..probe import Options, format_report, probe  # noqa: I001 (late: only outside servers)

    console.info(f"probing {url} against the contract (python -m duplexbench probe)")
    from ..contract import Transport

    # Only the transports this run measures: a broken /poll must not refuse a WebSocket run.
    mounts = tuple(dict.fromkeys(Transport(t).server_mount for t in transports))
    report = probe(Options(url, ca_file=args.ca_file, transports=mounts, h2=h2))
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "probe.json").write_text(json.dumps(report.as_json(), indent=2), encoding="utf-8")
    counts = report.counts()
    summary = {"ran": True, "ok": report.ok, **counts, "failed": [r.rule.id for r in report.failed],
               "file": "probe.json",
               # WebSocket over HTTP/2 where the server advertised and passed it (RFC 8441).
               "rfc8441": any(r.rule.id == RFC8441_RULE and r.status == "pass"
                              for r in report.results)}
    if not report.ok:
        lines = [line for line in format_report(report).splitlines() if line.startswith("FAIL")]
        more = f"\n... and {len(lines) - 12} more" if len(lines) > 12 else ""
        raise SetupError(
            f"{url} breaks the contract ({counts['fail']} rule(s)); refusing to measure it "
            f"(--no-probe measures anyway). Details: {Path(run_dir) / 'probe.json'} or "
            f"python -m duplexbench probe {url}\n" + "\n".join(lines[:12]) + more)
    console.info(f"probe: {counts['pass']} rules pass, {counts['skip']} skipped")
    return summary
