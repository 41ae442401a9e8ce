"""The run loop: every point of a session, then the final table, status and exit code.

One load point at a time, never two transports at once (pyperf's rule: one
worker at a time). What can go wrong is part of the design. A crashed server or
load generator makes a *failed* point with the reason (its last lines of
output), and the run goes on; three failures in a row stop it. Ctrl-C or SIGTERM
stop the children, keep the finished points and mark the run ``incomplete``
(exit 130). A run never ends with a meta.json that says ``complete`` unless
every point produced a row.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import procs
from ..console import TABLE_COLUMNS, display_path
from ..machine.doctor import MissingParts
from ..machine.limits import LimitError
from ..scenario import LoadPoint
from ..scenario.faults import loss_allowed
from .session import Session

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_LOST", "EXIT_OK", "EXIT_USAGE",
           "MAX_CONSECUTIVE_FAILURES", "run_session"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_LOST = 3  # messages lost where the scenario expects none
EXIT_USAGE = 2  # bad scenario or flags, a missing part, a point that cannot fit: nothing ran
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"

#: A run gives up after this many failed points in a row: the cause is not the
#: load (a missing module, a broken build) and more attempts only add noise.
MAX_CONSECUTIVE_FAILURES = 3


def run_session(session: Session, points: Sequence[LoadPoint], *,
                report: Callable[[Path], str] | None = None) -> int:
    """Run ``points`` in ``session``; final table, warnings, status, exit code.

    ``report(run_dir)``, when given, writes the run's report after the table and returns
    what to print (the run command passes :mod:`duplexbench.report`'s).
    """
    console = session.console
    status, reason, code = "complete", "", EXIT_OK
    try:  # a point that lacks a part or cannot fit is refused before anything starts
        session.check_parts(points)
        session.check_limits(points)
    except (MissingParts, LimitError) as exc:
        console.error(str(exc))
        return EXIT_USAGE
    try:
        session.start()
        failures_in_a_row = 0
        for number, point in enumerate(points, 1):
            result = session.run_point(point, number, len(points))
            failures_in_a_row = 0 if result.measured else failures_in_a_row + 1
            if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                skipped = len(points) - number
                reason = (f"stopped after {failures_in_a_row} failed points in a row "
                          f"({skipped} not run); last: {result.reason}")
                break
    except KeyboardInterrupt as exc:
        with procs.shielded(redeliver=False):
            what = str(exc) or "interrupted (Ctrl-C)"
            done = len(session.results)
            reason = f"{what} after {done} of {len(points)} points"
            console.error(reason)
            if session.writer is not None:
                session.finish("incomplete", reason)
                console.always(f"results (incomplete): {display_path(session.run_dir)}")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug in the harness: say so, and leave a run marked failed
        with procs.shielded(redeliver=False):
            traceback.print_exc()
            reason = f"internal error: {type(exc).__name__}: {exc}"
            console.error(reason)
            if session.writer is not None and not session.finished:
                session.finish("failed", reason)
        return EXIT_FAILED
    failed = [r for r in session.results if not r.ok]
    if failed or reason:
        status, code = "failed", EXIT_FAILED
        reason = reason or (f"{len(failed)} of {len(points)} points failed "
                            f"({failed[0].status}); first: {failed[0].point.label}: "
                            f"{failed[0].reason}")
    # A SIGKILL fault may lose what was in flight (counted in the row, not a failure).
    lost = [r for r in session.results if r.ok and r.lost > 0 and not loss_allowed(r.point.fault)]
    if lost and not session.scenario.expect_loss and code == EXIT_OK:
        code = EXIT_LOST
        reason = (f"{sum(r.lost for r in lost)} message(s) lost in {len(lost)} point(s); "
                  "the scenario expects none")
        session.warn(reason)
    with procs.shielded(redeliver=False):  # a signal now would leave meta.json "running"
        session.finish(status, reason)
    rows, columns = [r.row for r in session.results], list(TABLE_COLUMNS)
    for extension in session.extensions:  # a column for what the run varies (tls, engine, path)
        rows, columns = extension.table(rows, columns)
    console.always("")
    console.table(rows, columns=columns, title=f"{session.scenario.name}: {session.run_id}",
                  caption="latency from the intended send time (p50/p99/max; coordinated "
                          "omission corrected) and the actual send time (p99 sent); "
                          "CPU = % of one core while measuring; validity: only ok and "
                          "server-saturated rows can compare transports (docs/DESIGN.md)")
    if report is not None and any(r.ok for r in session.results):
        _write_report(session, report)
    console.summary_warnings()
    if code == EXIT_FAILED:
        console.error(reason)
    elif code == EXIT_LOST:
        console.always(f"LOST MESSAGES: {reason} (exit {EXIT_LOST})", style="bold red")
    console.always(f"results: {display_path(session.run_dir)}{_latest_note(session)}")
    return code


def _write_report(session: Session, report: Callable[[Path], str]) -> None:
    try:
        print(report(session.run_dir))
    except Exception as exc:  # a report failure must not lose results
        session.console.warn(f"could not write the report ({type(exc).__name__}: {exc}); "
                             f"results are intact in {display_path(session.run_dir)}")
    except KeyboardInterrupt:  # the run itself is finished and saved; only the report stops
        session.console.warn("report interrupted; the results are complete: "
                             f"python -m duplexbench report {display_path(session.run_dir)}")


def _latest_note(session: Session) -> str:
    link = session.run_dir.parent / "latest"
    if session.baseline or not link.is_symlink():
        return ""
    try:
        target = os.readlink(link)
    except OSError:
        return ""
    return f" (latest -> {target})" if target == session.run_dir.name else ""
