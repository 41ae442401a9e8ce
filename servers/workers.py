"""The parent of ``--workers N --broker redis``: one port, N worker processes, supervised.

Why a parent: past one core the server is several processes, but whoever
starts it (the harness, a test, a person) still wants one process that
prints one URL, stops on one SIGTERM and leaves nothing behind. So:

- The parent binds the port without listening (``SO_REUSEPORT``; with
  ``--port 0`` this is where the port is chosen) and holds it while it lives.
  Each worker binds the same port with ``SO_REUSEPORT`` and listens; the
  kernel spreads incoming connections over the listening workers (a hash of
  the connection's addresses). The parent's socket never listens, so it never
  gets a connection.
- It starts the workers (``python -m servers <same options> --port P`` with
  ``DUPLEXBENCH_WORKER_INDEX=K`` in their environment), each wrapped by ``duplexbench.procs.dying_with_parent``
  (PR_SET_PDEATHSIG = SIGKILL: they die with the parent, even a SIGKILLed
  one), waits until each printed its ``listening on`` line, then prints the
  usual first line ``duplexbench server listening on http://HOST:PORT
  (transports: ...; workers: N, broker: redis)``.
- Workers run in sessions of their own, so a signal to the parent's process
  group (the harness's stop, Ctrl-C) reaches the parent only, which forwards
  it once as SIGTERM (each worker's graceful flush: a second signal during it
  would cut it short); the parent exits 0 once all have (SIGKILL after twice
  ``--shutdown-timeout`` plus 5 s). A SIGKILL of the parent (or of its group)
  takes the workers with it through PR_SET_PDEATHSIG.
- A worker that dies otherwise (a crash, a SIGKILL, exit 75 = its broker lost
  its data) is started again at once with the same index; its clients have
  reconnected meanwhile (to the other workers) and resume from their cursors.
  A worker that fails three times in a row before listening stops everything
  (exit 1), so a bad option or an unreachable Redis does not loop forever.

CPU affinity: workers inherit the parent's (the harness pins the parent
right after spawning it, before any worker exists: ``procs.spawn``), so they
share the parent's cores and the kernel places them; ``--worker-cpus 2,3``
pins worker K to one core each, ``LIST[K % len]``, re-applied on restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

from duplexbench import procs

from .config import ENV_WORKER_INDEX, ServerConfig

__all__ = ["START_TIMEOUT_S", "supervise"]

#: A worker must print its line within this many seconds.
START_TIMEOUT_S = 30.0
#: Consecutive failed starts (exit before listening) of one worker that stop the server.
MAX_FAILED_STARTS = 3


def supervise(config: ServerConfig, argv: list[str]) -> int:
    """Run the parent until stopped; the process's exit status."""
    try:
        return asyncio.run(_Parent(config, argv).run())
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled inside
        return 0


def _reserve(host: str, port: int) -> socket.socket:
    """Bind (not listen) host:port with SO_REUSEPORT for the workers to share.

    First a plain bind: with SO_REUSEPORT alone, a port some other of our servers
    already listens on would be shared silently instead of refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    finally:
        probe.close()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Worker:
    __slots__ = ("index", "proc", "failed_starts", "ready")

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.failed_starts = 0
        self.ready = False


class _Parent:
    def __init__(self, config: ServerConfig, argv: list[str]) -> None:
        self.config = config
        self.argv = argv
        self.port = 0
        self.extra_args: list[str] = []
        self.workers = [_Worker(k) for k in range(config.workers)]
        self.stop = asyncio.Event()
        self.status = 0
        self._watchers: set[asyncio.Task] = set()

    def _say(self, text: str) -> None:
        print(f"python -m servers: {text}", file=sys.stderr, flush=True)

    async def run(self) -> int:
        config = self.config
        if not await self._redis_reachable():
            return 1
        try:
            reservation = _reserve(config.host, config.port)
        except OSError as exc:
            self._say(f"error: cannot listen on {config.host}:{config.port}: {exc}")
            return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        try:
            self.port = reservation.getsockname()[1]
            scheme, note = self._tls()
            starting = asyncio.ensure_future(asyncio.gather(*(self._start(w) for w in self.workers)))
            stopped = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not starting.done():  # stopped while starting
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                return self.status
            if not all(starting.result()):
                self.status = 1
                return 1
            shown = f"[{config.host}]" if ":" in config.host else config.host
            print(f"duplexbench server listening on {scheme}://{shown}:{self.port} "
                  f"(transports: {', '.join(config.transports)}; workers: {config.workers}, "
                  f"broker: {config.broker}{note})", flush=True)
            await self.stop.wait()
            return self.status
        finally:
            self.stop.set()
            await self._stop_workers()
            reservation.close()

    async def _redis_reachable(self) -> bool:
        from .broker_store import RedisStore
        from .retention import Unavailable

        store = RedisStore(self.config.redis_url, pool_size=1)
        try:
            await store.connect()
            return True
        except Unavailable as exc:
            self._say(f"error: {exc}")
            return False
        finally:
            await store.close()

    def _tls(self) -> tuple[str, str]:
        """The scheme and the CA note; --tls: one certificate made here for every worker."""
        config = self.config
        if not (config.tls_cert or config.tls_dir):
            return "http", ""
        if config.tls_cert:
            return "https", ""
        import atexit
        import shutil
        import tempfile

        from duplexbench.tls import make_certificates

        directory = config.tls_dir
        if directory == "-":
            directory = tempfile.mkdtemp(prefix="duplexbench-tls-")
            atexit.register(shutil.rmtree, directory, True)
        files = make_certificates(directory)
        self.extra_args = ["--tls-cert", str(files.cert_file), "--tls-key", str(files.key_file)]
        return "https", f"; CA certificate: {files.ca_file}"

    def _command(self, worker: _Worker) -> list[str]:
        return [sys.executable, "-m", "servers", *self.argv, *self.extra_args,
                "--port", str(self.port)]

    async def _start(self, worker: _Worker) -> bool:
        """Start one worker and wait for its line; False (and the reason said) if it failed."""
        while not self.stop.is_set():
            worker.ready = False
            proc = worker.proc = await asyncio.create_subprocess_exec(
                *procs.dying_with_parent(self._command(worker)),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None,
                start_new_session=True,  # signals come from us, once (see the docstring)
                env={**os.environ, "PYTHONUNBUFFERED": "1", ENV_WORKER_INDEX: str(worker.index)})
            cpus = self.config.worker_cpus
            if cpus:
                try:
                    os.sched_setaffinity(proc.pid, {cpus[worker.index % len(cpus)]})
                except OSError as exc:
                    self._say(f"worker {worker.index}: cannot pin to core "
                              f"{cpus[worker.index % len(cpus)]}: {exc}")
            if await self._announced(worker, proc):
                worker.failed_starts = 0
                worker.ready = True
                watcher = asyncio.ensure_future(self._watch(worker, proc))
                self._watchers.add(watcher)
                watcher.add_done_callback(self._watchers.discard)
                return True
            worker.failed_starts += 1
            if worker.failed_starts >= MAX_FAILED_STARTS or self.stop.is_set():
                self._say(f"error: worker {worker.index} did not start "
                          f"({worker.failed_starts} attempts); stopping")
                self.status = 1
                self.stop.set()
                return False
            await asyncio.sleep(0.2 * worker.failed_starts)
        return False

    async def _announced(self, worker: _Worker, proc: asyncio.subprocess.Process) -> bool:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(remaining, 0.01))
            except asyncio.TimeoutError:
                self._say(f"worker {worker.index} (pid {proc.pid}) printed no address in "
                          f"{START_TIMEOUT_S:.0f} s")
                proc.kill()
                await proc.wait()
                return False
            if not line:
                code = await proc.wait()
                self._say(f"worker {worker.index} (pid {proc.pid}) exited with {code} "
                          "before listening")
                return False
            if b"listening on" in line:
                asyncio.ensure_future(self._forward(worker, proc))
                return True
            sys.stderr.write(f"worker {worker.index}: {line.decode(errors='replace')}")

    async def _forward(self, worker: _Worker, proc: asyncio.subprocess.Process) -> None:
        """Anything a worker prints later goes to our stderr (our stdout is one line)."""
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            sys.stderr.write(f"worker {worker.index}: {line.decode(errors='replace')}")

    async def _watch(self, worker: _Worker, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if code == 0:
            # A graceful exit: normally our own SIGTERM, or the group's (the harness stops
            # parent and workers at once; our handler may run a moment after theirs).
            await asyncio.sleep(0.5)
        if self.stop.is_set():
            return
        why = "its broker lost its data" if code == 75 else f"exit status {code}"
        self._say(f"worker {worker.index} (pid {proc.pid}) ended ({why}); starting it again")
        await self._start(worker)

    async def _stop_workers(self) -> None:
        """SIGTERM every worker (graceful flush), SIGKILL what is left after the grace."""
        live = [w.proc for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for proc in live:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        grace = 2 * self.config.shutdown_timeout_s + 5
        if live:
            _, pending = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in live],
                                            timeout=grace)
            if pending:
                for proc in live:
                    if proc.returncode is None:
                        proc.kill()
                await asyncio.gather(*(p.wait() for p in live))
        for watcher in list(self._watchers):
            watcher.cancel()
