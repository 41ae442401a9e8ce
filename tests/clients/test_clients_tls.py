"""TLS: with ``ca_file`` every client (subscribers, the publisher process) speaks
https / wss and verifies the server's certificate against that CA.

The server is the real one behind a small TLS-terminating relay (the servers
speak plain HTTP); the certificate is made with the openssl command line.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import threading
import time

import pytest

from _parts import needs
from clients.spec import LoadSpec
from duplexbench.procs.server import ServerProcess


def loadgen(spec: LoadSpec, tmp_path) -> subprocess.Popen:
    spec_path = tmp_path / "SPEC.json"
    spec_path.write_text(spec.to_json())
    return subprocess.Popen([sys.executable, "-m", "clients.loadgen", str(spec_path),
                             str(tmp_path / "out")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 60.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout * SCALE)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"load generator did not finish:\n{err}")
    return proc.returncode, out, err

SCALE = float(os.environ.get("DUPLEXBENCH_TEST_TIMEOUT_SCALE", "1"))
pytestmark = needs("tls")


def _certificate(directory):
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


class _TlsRelay:
    """TLS on a local port, plain TCP to the server: an https / wss front."""

    def __init__(self, cert, key, target_port: int) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.target_port = target_port
        self.port = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer):
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.context)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.Event().wait()

        self.loop.run_until_complete(main())


@pytest.fixture(scope="module")
def tls_front(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    cert, key = _certificate(directory)
    with ServerProcess("all") as server:
        port = int(server.url.rsplit(":", 1)[1])
        relay = _TlsRelay(cert, key, port)
        yield f"https://127.0.0.1:{relay.port}", str(cert)


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_https_and_wss_verified_with_ca_file(tls_front, tmp_path, transport):
    url, ca = tls_front
    spec = LoadSpec(transport=transport, sub_url=url, clients=2, rate=50.0, warmup_s=0.2,
                    duration_s=0.6, drain_s=1.0, ca_file=ca,
                    topic_prefix=f"tls-{transport}-{time.monotonic_ns() % 10**6}")
    code, _, err = finish(loadgen(spec, tmp_path))
    assert code == 0, err
    counters = json.loads((tmp_path / "out" / "counters.json").read_text())
    assert counters["lost"] == 0 and counters["delivered"] == counters["expected"] > 0


def test_a_certificate_not_signed_by_ca_file_is_refused(tls_front, tmp_path):
    url, _ = tls_front
    other, _ = _certificate(tmp_path)  # a different self-signed CA
    spec = LoadSpec(transport="sse", sub_url=url, clients=1, duration_s=0.5, ca_file=str(other),
                    topic_prefix=f"tls-bad-{time.monotonic_ns() % 10**6}")
    code, _, err = finish(loadgen(spec, tmp_path))
    assert code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in err or "certificate verify failed" in err
