"""TLS for a run: a throw-away CA and a server certificate, made locally (trustme), no network.

``make_certificates(dir)`` writes ``ca.pem`` (what every client verifies
against), ``server.pem`` (certificate chain) and ``server.key`` into a run's
directory, for 127.0.0.1, ::1 and localhost. The CA exists only for that run:
nothing is installed into the system trust store, and clients are given the
CA file explicitly (LoadSpec ``ca_file``, ``probe --ca-file``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TLSFiles", "client_context", "make_certificates", "server_context"]

HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TLSFiles:
    ca_file: str
    cert_file: str
    key_file: str

    def server_args(self) -> list[str]:
        """Flags for ``python -m servers``."""
        return ["--tls-cert", self.cert_file, "--tls-key", self.key_file]


def make_certificates(directory: str | Path, hosts: tuple[str, ...] = HOSTS) -> TLSFiles:
    """A fresh CA and a server certificate for ``hosts``, written into ``directory``."""
    try:
        import trustme
    except ImportError:  # pragma: no cover - a dependency; a clear message beats a traceback
        raise RuntimeError("TLS needs the trustme package: pip install 'trustme>=1.1,<2'") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="duplexbench run CA")
    cert = ca.issue_cert(*hosts)
    files = TLSFiles(str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server.key"))
    ca.cert_pem.write_to_path(files.ca_file)
    Path(files.cert_file).write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(files.key_file)
    Path(files.key_file).chmod(0o600)
    return files


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def client_context(ca_file: str = "") -> ssl.SSLContext:
    """Verifies the server against ``ca_file`` (or the system store when empty)."""
    return ssl.create_default_context(cafile=ca_file or None)
