"""``python -m clients.loadgen SPEC.json OUT_DIR``: one load point, measured.

The runner starts one of these per load point, pinned to the load-generator
core (docs/DESIGN.md). This module is the process around
:class:`clients.point.LoadGen`: it reads the spec, raises the open-files
limit, picks the event loop (clients.process), and turns signals into an orderly stop. Progress goes
to stdout as JSON lines, problems to stderr.

Exit codes: 0 complete; 1 failed (counters.json still written, with the
reason); 2 bad usage or spec; 128+N stopped by signal N (SIGTERM, SIGINT),
with what was measured written and ``"complete": false``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import traceback
from pathlib import Path

from .base import ClientError
from .point import LoadGen, emit
from .process import loop_factory, raise_nofile_limit
from .spec import LoadSpec, SpecError

__all__ = ["main"]


# The process: signals, exit codes, output files


async def _main(spec: LoadSpec, out_dir: Path) -> int:
    if spec.loadgen_procs > 1:
        from .shard import ShardedLoadGen
        gen: LoadGen = ShardedLoadGen(spec, out_dir)
    else:
        gen = LoadGen(spec, out_dir)
    loop = asyncio.get_running_loop()
    body = asyncio.current_task()
    assert body is not None
    stopped_by: list[int] = []
    #: Whether a signal may interrupt what runs now. Never while the files are
    #: written: a supervisor that signals twice (e.g. the process and then its
    #: group) must still find counters.json.
    interruptible = [True]

    def on_signal(signum: int) -> None:
        stopped_by.append(signum)
        if interruptible[0]:
            body.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    progress = asyncio.create_task(gen.report_progress())
    complete, reason, code = False, None, 1
    try:
        try:
            await gen.run()
            complete, code = True, 0
        except asyncio.CancelledError:
            if not stopped_by:
                raise
            reason = f"stopped by {signal.Signals(stopped_by[0]).name} during {gen.phase}"
            code = 128 + stopped_by[0]
            body.uncancel()
            try:
                await gen.stop_early()
            except asyncio.CancelledError:  # another signal: no patience left
                body.uncancel()
        except ClientError as exc:
            reason = str(exc)
            print(f"loadgen: {exc}", file=sys.stderr)
        except Exception as exc:  # a bug: still leave counters behind, and the traceback
            reason = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            print(f"loadgen: internal error during {gen.phase}: {reason}", file=sys.stderr)
        progress.cancel()
        try:
            await asyncio.wait_for(gen.collect(), 30.0)
        except (asyncio.TimeoutError, asyncio.CancelledError, ClientError, ValueError,
                OSError) as exc:
            body.uncancel() if isinstance(exc, asyncio.CancelledError) else None
            gen.note_error(f"collecting the shards' results failed: {exc!r}")
        interruptible[0] = False
        counters = gen.write(complete, reason)
        emit("progress", **gen.progress())
        interruptible[0] = True
        try:
            await gen.close()
        except asyncio.CancelledError:  # a signal while closing: the OS closes the rest
            body.uncancel()
        emit("done", complete=complete, delivered=counters["delivered"], lost=counters["lost"],
             reason=reason)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    if stopped_by and complete:
        code = 0  # the signal came after the point was complete: nothing was lost
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print("usage: python -m clients.loadgen SPEC.json OUT_DIR", file=sys.stderr)
        return 2
    try:
        spec = LoadSpec.from_file(args[0])
    except SpecError as exc:
        print(f"loadgen: bad load spec: {exc}", file=sys.stderr)
        return 2
    raise_nofile_limit()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_main(spec, Path(args[1])))


if __name__ == "__main__":
    sys.exit(main())
