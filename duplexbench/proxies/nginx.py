"""A real nginx between the subscribers and the server under test.

RFC 6202 §3.2 warns that intermediaries may buffer HTTP streaming responses;
the documents compare the transports as deployed, behind a reverse proxy. So a
scenario's ``[proxy]`` table puts Debian's nginx (``/usr/sbin/nginx``) in the
path, configured the way a deployment configures each transport:

- HTTP/1.1 to the upstream with a keep-alive pool (``proxy_http_version 1.1``,
  ``Connection ""``), so a long poll does not pay a new upstream TCP connection
  per request;
- ``/ws``: ``Upgrade`` and ``Connection: upgrade`` forwarded (nginx tunnels the
  upgraded connection; buffering does not apply to it);
- ``proxy_read_timeout`` above the long-poll timeout and the heartbeat, so
  nginx never cuts a held poll or a quiet stream;
- ``proxy_buffering`` on or off (the sweep); with it on, nginx still honours
  the upstream's ``X-Accel-Buffering: no`` per response, which the server
  sends on streams unless started with ``--no-accel-buffering-header``;
- ``Host`` passed through, so the server's same-origin check sees the
  address the client used.

HTTP/2 (``NginxSettings.http2``), as a deployment terminates it: TLS with
the run's certificate (duplexbench/tls.py) and ALPN offering ``h2`` and
``http/1.1`` on the main port, and a second, cleartext port for h2c with
prior knowledge (``h2c``); the upstream side stays HTTP/1.1 keep-alive, so
only the client's side of nginx changes framing. nginx (1.22, and every
release so far) has no RFC 8441: a WebSocket through nginx is the HTTP/1.1
upgrade (ALPN http/1.1 on the TLS port), never a stream of the HTTP/2
connection; HTTP/2 clients see no ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` and
say so (clients.h2ws). The ``http2`` syntax follows the binary's version:
``listen ... ssl http2`` before 1.25.1, the ``http2 on;`` directive from it.

Everything nginx writes (config, pid file, error log, temp directories) lives in
one directory the caller owns (a point's work directory): no root paths, no
``/var/log``. nginx runs in the foreground (``daemon off``) as a master and one
worker, started with :func:`duplexbench.procs.children.spawn` (own session, pinned,
tracked, dies with the harness); the sampler follows the tree as process
``proxy``.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import procs
from ..machine.parts import NGINX, find_nginx

__all__ = [
    "NGINX",
    "NginxError",
    "NginxProxy",
    "NginxSettings",
    "find_nginx",
    "http2_new_syntax",
    "nginx_config",
    "nginx_version",
]

#: How long nginx may take to accept connections after start.
START_TIMEOUT_S = 10.0


class NginxError(RuntimeError):
    """nginx is missing, rejected its configuration or did not start."""


@functools.lru_cache(maxsize=4)
def nginx_version(binary: str) -> str:
    """``nginx/1.22.1`` (what ``nginx -v`` prints), or "" when it cannot be run."""
    try:
        done = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


@dataclass(frozen=True)
class NginxSettings:
    """What a point asks of nginx (besides where the server is)."""

    buffering: bool = True
    #: Longest time a response may stay silent: above the poll timeout and the heartbeat.
    read_timeout_s: float = 120.0
    #: Connections nginx must hold (client side + upstream side, per subscriber).
    max_connections: int = 1024
    #: Idle upstream connections kept per worker (HTTP/1.1 keep-alive pool).
    upstream_keepalive: int = 64
    #: Compress JSON and event streams for clients that accept it (a common deployment
    #: setting; with buffering on it holds a stream's events until its buffer fills).
    gzip: bool = False
    #: TLS on the main port with this certificate chain and key (PEM paths; "" = cleartext).
    tls_cert: str = ""
    tls_key: str = ""
    #: HTTP/2 towards clients: ALPN h2 (and http/1.1) on the TLS port; needs tls_cert.
    http2: bool = False
    #: A second, cleartext port speaking HTTP/2 with prior knowledge (h2c).
    h2c: bool = False
    #: Concurrent streams per HTTP/2 connection (nginx's default is 128): at least the
    #: subscriptions a page multiplexes (LoadSpec streams_per_connection) plus its POSTs.
    h2_max_streams: int = 256

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise NginxError("tls_cert and tls_key go together (PEM certificate chain and key)")
        if self.http2 and not self.tls_cert:
            raise NginxError("http2 needs tls_cert/tls_key (HTTP/2 via ALPN); cleartext "
                             "HTTP/2 is the h2c port (h2c = True)")


def http2_new_syntax(version: str) -> bool:
    """Whether this nginx takes ``http2 on;`` (1.25.1+) rather than ``listen ... http2``."""
    try:
        parts = tuple(int(p) for p in version.removeprefix("nginx/").split(".")[:3])
    except ValueError:
        return False
    return parts >= (1, 25, 1)


def _listen_lines(settings: NginxSettings, listen_port: int, h2c_port: int,
                  version: str) -> str:
    """The server block's listen (and TLS / HTTP/2) directives."""
    new = http2_new_syntax(version)
    tls = " ssl" if settings.tls_cert else ""
    http2 = " http2" if settings.http2 and not new else ""
    lines = [f"listen 127.0.0.1:{listen_port}{tls}{http2} backlog=4096;"]
    if settings.h2c:
        # Cleartext HTTP/2 on its own port: clients come with prior knowledge (RFC 9113 3.3).
        lines.append(f"listen 127.0.0.1:{h2c_port}{'' if new else ' http2'} backlog=4096;")
    if new and (settings.http2 or settings.h2c):
        lines.append("http2 on;")
    if settings.http2 or settings.h2c:
        lines.append(f"http2_max_concurrent_streams {max(128, int(settings.h2_max_streams))};")
    if settings.tls_cert:
        lines += [f"ssl_certificate {Path(settings.tls_cert).resolve()};",
                  f"ssl_certificate_key {Path(settings.tls_key).resolve()};",
                  "ssl_protocols TLSv1.2 TLSv1.3;",
                  "ssl_session_cache shared:duplexbench:1m;"]
    return "\n        ".join(lines)


def nginx_config(*, listen_port: int, upstream: str, directory: Path,
                 settings: NginxSettings, user: str | None = None, h2c_port: int = 0,
                 version: str = "nginx/1.22.1") -> str:
    """The complete nginx.conf text for one point.

    ``upstream`` is ``host:port`` of the server. ``user`` is only needed when
    nginx starts as root (it would otherwise switch its worker to ``nobody``,
    which cannot write the temp directories under ``directory``). ``h2c_port``:
    the cleartext HTTP/2 port (``settings.h2c``); ``version``: what ``nginx -v``
    says (it decides the HTTP/2 syntax).
    """
    d = Path(directory).resolve()
    timeout = f"{max(1, int(settings.read_timeout_s + 0.999))}s"
    connections = max(256, int(settings.max_connections))
    buffering = "on" if settings.buffering else "off"
    user_line = f"user {user};\n" if user else ""
    gzip = ("gzip on;\n    gzip_types application/json text/event-stream application/x-ndjson;"
            if settings.gzip else "gzip off;")
    return f"""# generated by duplexbench.proxies.nginx: one load point's reverse proxy
{user_line}worker_processes 1;
worker_rlimit_nofile {connections * 2 + 64};
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections {connections};
    multi_accept on;
}}

http {{
    access_log off;  # a deployment logs, but disk writes would be measured as proxy CPU
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    tcp_nodelay on;
    keepalive_timeout {timeout};
    keepalive_requests 1000000;  # a long-polling client reuses its connection for every poll
    client_max_body_size 2m;
    {gzip}

    upstream duplexbench_server {{
        server {upstream};
        keepalive {int(settings.upstream_keepalive)};
        keepalive_requests 1000000;
        keepalive_timeout {timeout};
    }}

    # WebSocket: "Connection: upgrade" only when the client asked for an upgrade;
    # otherwise an empty Connection header keeps the upstream connection alive.
    map $http_upgrade $duplexbench_connection {{
        default upgrade;
        ''      '';
    }}

    server {{
        {_listen_lines(settings, listen_port, h2c_port, version)}
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        # The page's scheme (https at a TLS front): the server's same-origin check needs it.
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Connection "";
        proxy_buffering {buffering};
        proxy_read_timeout {timeout};
        proxy_send_timeout {timeout};
        proxy_connect_timeout 5s;

        location /ws {{
            proxy_pass http://duplexbench_server;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $duplexbench_connection;
        }}

        location / {{
            proxy_pass http://duplexbench_server;
        }}
    }}
}}
"""


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _user_line() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import grp
    import pwd

    user = pwd.getpwuid(0).pw_name
    return f"{user} {grp.getgrgid(0).gr_name}"


class NginxProxy:
    """nginx for one point: ``start()`` writes the config and waits until it accepts."""

    def __init__(self, upstream_url: str, directory: Path, settings: NginxSettings, *,
                 cpu: int | None = None, binary: str | None = None) -> None:
        host_port = upstream_url.split("://", 1)[-1].split("/", 1)[0]
        self.upstream = host_port
        self.directory = Path(directory)
        self.settings = settings
        self.cpu = cpu
        self.binary = binary or find_nginx()
        self.port = 0
        self.h2c_port = 0  # settings.h2c: the cleartext HTTP/2 port
        self.child: procs.Child | None = None

    @property
    def url(self) -> str:
        """The main port: https:// with TLS (ALPN h2 and http/1.1 with http2), else http://."""
        return f"{'https' if self.settings.tls_cert else 'http'}://127.0.0.1:{self.port}"

    @property
    def h2c_url(self) -> str:
        """The cleartext HTTP/2 port (prior knowledge), or "" without ``settings.h2c``."""
        return f"http://127.0.0.1:{self.h2c_port}" if self.h2c_port else ""

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    @property
    def config_path(self) -> Path:
        return self.directory / "nginx.conf"

    def error_log(self, lines: int = 20) -> str:
        try:
            text = (self.directory / "error.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def start(self) -> "NginxProxy":
        if not self.binary:
            raise NginxError("nginx is not installed (apt-get install nginx)")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.directory / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.h2c_port = _free_port() if self.settings.h2c else 0
        self.config_path.write_text(nginx_config(
            listen_port=self.port, upstream=self.upstream, directory=self.directory,
            settings=self.settings, user=_user_line(), h2c_port=self.h2c_port,
            version=nginx_version(self.binary)), encoding="utf-8")
        # -e: the error log before the config is read (the default is under /var/log).
        command = [self.binary, "-p", str(self.directory.resolve()), "-e",
                   str((self.directory / "error.log").resolve()),
                   "-c", str(self.config_path.resolve()), "-g", "daemon off;"]
        log = open(self.directory / "nginx.stderr", "w", encoding="utf-8")
        try:
            self.child = procs.spawn(command, name="proxy", cpu=self.cpu, stdout=log, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                code = self.child.poll()
                self.stop()
                raise NginxError(f"nginx exited with code {code} at start: "
                                 f"{self._why() or '(no output)'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NginxError(f"nginx did not accept connections within {START_TIMEOUT_S:.0f} s: "
                         f"{self._why() or '(no output)'}")

    def _why(self) -> str:
        try:
            stderr = (self.directory / "nginx.stderr").read_text(errors="replace").strip()
        except OSError:
            stderr = ""
        return "\n".join(t for t in (stderr, self.error_log()) if t)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (nginx's fast shutdown) to master and worker, SIGKILL after ``timeout``."""
        if self.child is None:
            return
        try:
            self.child.stop(timeout=timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - stop() SIGKILLs
            pass

    def __enter__(self) -> "NginxProxy":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
