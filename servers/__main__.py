"""``python -m servers``: start one duplexbench server, print its URL, stop on a signal.

The first stdout line is the contract with whoever started us
(duplexbench/procs/server.py parses ``listening on (http://...)``), so it is
printed and flushed the moment the socket listens, with the real port when
``--port 0`` asked for any free one; with the plain-TCP listener it also says
``and tcp://HOST:PORT`` (its real port too). SIGINT/SIGTERM shut down gracefully
(listener closed, held polls answered, streams ended, WebSockets closed 1001)
and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .app import make_app
from .state import STATE
from .config import ConfigError, ServerConfig, parse_config
from .gcpolicy import apply_gc_policy
from .retention import HubError

#: servers/broker.py's, without importing redis in a process that has no broker.
EXIT_EPOCH_LOST = 75

__all__ = ["main", "serve"]


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"python -m servers: error: {exc}", file=sys.stderr)
        return 2
    if config.brokered and config.worker_index < 0:
        # The parent: bind the port, start and supervise the workers (servers/workers.py).
        from .workers import supervise

        return supervise(config, sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.server").addFilter(_quiet_bad_requests)
    _raise_open_files_limit()
    loop_factory = None
    if config.uvloop:
        try:
            import uvloop
        except ImportError:
            print("python -m servers: error: --uvloop needs the uvloop package", file=sys.stderr)
            return 2
        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(serve(config))
    except OSError as exc:
        print(f"python -m servers: error: cannot listen on {config.host}:{config.port}: {exc}",
              file=sys.stderr)
        return 1
    except HubError as exc:  # a worker that cannot reach its broker at start
        print(f"python -m servers: error: {exc}", file=sys.stderr)
        return 1


async def serve(config: ServerConfig, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully.

    Returns the exit status: 0, or a worker's EXIT_EPOCH_LOST when its broker lost
    its data (servers/broker.py: the parent starts a fresh worker)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    context, ca_note = _tls(config)
    app = make_app(config, context)
    hub = app[STATE].hub
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,  # a log line per request would be measured as server cost
        shutdown_timeout=config.shutdown_timeout_s,
        handler_cancellation=True,  # a vanished client's held poll stops holding
    )
    await runner.setup()
    apply_gc_policy(config.gc)  # after the app is built: its objects are frozen
    try:
        # A worker shares the port with its siblings: the kernel spreads connections.
        site = web.TCPSite(runner, config.host, config.port, backlog=4096, reuse_address=True,
                           reuse_port=config.worker_index >= 0 or None, ssl_context=context)
        await site.start()
        host, port = runner.addresses[0][:2]
        shown = f"[{config.host}]" if ":" in config.host else config.host
        tcp = runner.app[STATE].tcp
        also = f" and tcp://{shown}:{tcp.port}" if tcp is not None else ""
        print(
            f"duplexbench server listening on {'https' if context else 'http'}://{shown}:{port}"
            f"{also} (transports: {', '.join(config.transports)}{ca_note})",
            flush=True,
        )
        if hub.remote:
            await _first(stop.wait(), hub.lost.wait())
        else:
            await stop.wait()
    finally:
        await runner.cleanup()
    return EXIT_EPOCH_LOST if hub.remote and hub.lost.is_set() else 0


async def _first(*waits) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _tls(config: ServerConfig):
    """(SSL context or None, note for the start-up line): --tls-cert/--tls-key or --tls."""
    if not (config.tls_cert or config.tls_dir):
        return None, ""
    from duplexbench.tls import make_certificates, server_context

    cert, key, note = config.tls_cert, config.tls_key, ""
    if not cert:
        directory = config.tls_dir
        if directory == "-":  # no --tls-dir: a temp dir that goes with the process
            import atexit
            import shutil
            import tempfile

            directory = tempfile.mkdtemp(prefix="duplexbench-tls-")
            atexit.register(shutil.rmtree, directory, True)
        files = make_certificates(directory)
        cert, key, note = files.cert_file, files.key_file, f"; CA certificate: {files.ca_file}"
    return server_context(cert, key), note


def _quiet_bad_requests(record: logging.LogRecord) -> bool:
    """Malformed HTTP from a client is answered 400 by aiohttp; it is not a server error."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError) and getattr(exc, "code", 500) < 500:
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "bad HTTP request answered %s: %s", (exc.code, exc.message)
        return logging.getLogger("aiohttp.server").isEnabledFor(logging.INFO)
    return True


def _raise_open_files_limit() -> None:
    # Thousands of connections need thousands of descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


if __name__ == "__main__":
    sys.exit(main())
