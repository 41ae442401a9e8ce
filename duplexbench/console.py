"""What a person sees while a benchmark runs: progress per phase, a final table, warnings.

Kept apart from the runner so the runner stays about processes and files. Two
renderings of the same events: in a terminal, rich progress bars (one per
phase: warmup, measure, drain) with live sent/delivered counts, as hyperfine
shows a bar per warmup and measurement; anywhere else (CI logs, pipes) plain
lines, one per event, never a carriage return, so a log reads top to bottom.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich import box
from rich.console import Console as RichConsole
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from .measure.validity import comparable

__all__ = ["Column", "Console", "PointProgress", "TABLE_COLUMNS", "display_path", "format_value",
           "insert_column"]


@dataclass(frozen=True)
class Column:
    """One column of the final table: a summary-row key, a header, a number format."""

    key: str
    header: str
    fmt: str = "{:,.0f}"
    #: Highlight in red when the value is above this (lost messages, saturated loadgen).
    red_above: float | None = None


#: The final table, in the order DESIGN.md's summary.csv names the figures.
TABLE_COLUMNS: tuple[Column, ...] = (
    Column("transport", "transport", "{}"),
    Column("clients", "clients"),
    Column("rate_msgs_s", "rate/s", "{:,.4g}"),
    Column("delivered", "delivered"),
    Column("lost", "lost", red_above=0),
    Column("late", "late", red_above=0),
    Column("lat_p50_ms", "p50 ms", "{:.2f}"),
    Column("lat_p99_ms", "p99 ms", "{:.2f}"),
    Column("lat_max_ms", "max ms", "{:.2f}"),
    Column("sent_p99_ms", "p99 ms\n(sent)", "{:.2f}"),
    Column("server_cpu_pct", "server\nCPU %", "{:.0f}"),
    Column("client_cpu_pct", "loadgen\nCPU %", "{:.0f}", red_above=90),
    Column("bytes_down_per_msg", "bytes\ndown/msg", "{:,.1f}"),
    Column("http_requests_per_msg", "req/msg", "{:.3f}"),
)


def insert_column(columns: list, column: Column, after: tuple[str, ...] = ("transport",)) -> list:
    """``columns`` with ``column`` after the last of the keys ``after`` present (else first)."""
    keys = [c.key for c in columns]
    at = max((keys.index(k) + 1 for k in after if k in keys), default=0)
    return columns[:at] + [column] + columns[at:]


def format_value(value: Any, fmt: str) -> str:
    """A table cell: '–' for missing/NaN, else ``fmt``; never raises."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return "–"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def display_path(path: str | Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


class PointProgress:
    """Progress of one load point; the runner feeds it loadgen events."""

    def __init__(self, console: "Console", label: str) -> None:
        self._console = console
        self._label = label
        self._phase = ""
        self._phase_started = 0.0
        self._phase_seconds = 0.0
        self._sent = 0
        self._delivered = 0
        self._task: TaskID | None = None
        self._closed = False

    def phase(self, name: str, seconds: float) -> None:
        """A new phase of ``seconds`` (0 = open-ended, e.g. drain that ends early)."""
        self._end_phase()
        self._phase, self._phase_started, self._phase_seconds = name, time.monotonic(), seconds
        progress = self._console._progress
        if progress is not None:
            # No length (connecting): an indeterminate, pulsing bar.
            self._task = progress.add_task(name, total=seconds or None, counts="", clock="")
        elif not self._console.quiet:
            length = f" {seconds:g} s" if seconds else ""
            self._console._plain(f"  {name}{length}")

    def update(self, sent: int | None = None, delivered: int | None = None) -> None:
        if sent is not None:
            self._sent = sent
        if delivered is not None:
            self._delivered = delivered
        self.tick()

    def tick(self) -> None:
        """Advance the bar by the clock (the runner calls this a few times a second)."""
        progress = self._console._progress
        if progress is None or self._task is None:
            return
        elapsed = time.monotonic() - self._phase_started
        length = f"/{self._phase_seconds:g}" if self._phase_seconds else ""
        progress.update(
            self._task,
            completed=min(elapsed, self._phase_seconds) if self._phase_seconds else 0,
            clock=f"{elapsed:5.1f}{length} s",
            counts=f"sent {self._sent:,}  delivered {self._delivered:,}",
        )

    def _end_phase(self) -> None:
        progress = self._console._progress
        if progress is not None and self._task is not None:
            self.tick()
            total = next(t.total for t in progress.tasks if t.id == self._task)
            # A drain may end early, connecting has no length: a finished phase shows full.
            progress.update(self._task, total=total or 1, completed=total or 1)
            progress.stop_task(self._task)
            self._task = None
        elif self._phase and not self._console.quiet and progress is None:
            elapsed = time.monotonic() - self._phase_started
            counts = ("" if self._phase == "connect" else
                      f", sent {self._sent:,}, delivered {self._delivered:,}")
            self._console._plain(f"    {self._phase} took {elapsed:.1f} s{counts}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._end_phase()
        progress = self._console._progress
        if progress is not None:
            progress.stop()
            self._console._progress = None


class Console:
    """``console.point(label)`` → :class:`PointProgress`; ``console.table(rows)`` at the end."""

    def __init__(self, *, quiet: bool = False, file: TextIO | None = None,
                 force_plain: bool | None = None) -> None:
        file = file or sys.stdout
        is_tty = bool(getattr(file, "isatty", lambda: False)())
        #: Rich bars only in a real terminal (and not when asked to be quiet).
        self.interactive = is_tty and not force_plain and not quiet
        self.quiet = quiet
        # Off a terminal rich would wrap at 80 columns: give tables room instead.
        self._rich = RichConsole(
            file=file, width=None if is_tty else 160, highlight=False,
            force_terminal=None if is_tty else False, soft_wrap=False,
        )
        self._file = file
        self._progress: Progress | None = None
        self.warnings: list[str] = []

    # Lines -------------------------------------------------------------------

    def _plain(self, text: str) -> None:
        print(text, file=self._file, flush=True)

    def info(self, text: str) -> None:
        if not self.quiet:
            self._rich.print(text, markup=False, soft_wrap=True)

    def always(self, text: str, style: str = "") -> None:
        """Printed even with --quiet (results path, exit reason)."""
        self._rich.print(Text(text, style=style), soft_wrap=True)

    def warn(self, text: str) -> None:
        """Remembered for the summary at the end, and shown now (once) unless quiet."""
        if text in self.warnings:
            return
        self.warnings.append(text)
        if not self.quiet:
            self._rich.print(Text(f"warning: {text}", style="yellow"), soft_wrap=True)

    def error(self, text: str) -> None:
        self._rich.print(Text(f"error: {text}", style="bold red"), soft_wrap=True)

    # Points ------------------------------------------------------------------

    def point(self, label: str, number: int, total: int) -> PointProgress:
        title = f"[{number}/{total}] {label}" if total > 0 else f"[{number}] {label}"
        if self.interactive:
            self._rich.print(Text(title, style="bold"))
            self._progress = Progress(
                TextColumn("  {task.description:<8}"),
                BarColumn(bar_width=30),
                TextColumn("{task.fields[clock]:>12}"),
                TextColumn("{task.fields[counts]}"),
                console=self._rich,
                transient=True,  # like hyperfine: bars go, the result line stays
                refresh_per_second=4,  # the runner's own CPU steals from what it measures
            )
            self._progress.start()
        elif not self.quiet:
            self._plain(title)
        return PointProgress(self, label)

    def point_result(self, row: Mapping[str, Any]) -> None:
        """One line per finished point, so a long sweep shows results as it goes."""
        if self.quiet:
            return
        status = str(row.get("status") or "ok")
        if status == "failed":  # no measurement at all: the reason is the news
            self._rich.print(Text(f"  failed: {row.get('warnings', '')}", style="bold red"),
                             soft_wrap=True)
            return
        lost = _number(row.get("lost")) or 0
        text = Text("  ")
        text.append(f"delivered {format_value(row.get('delivered'), '{:,.0f}')}, ")
        text.append(f"lost {format_value(row.get('lost'), '{:,.0f}')}",
                    style="bold red" if lost > 0 else "")
        text.append(
            f", p50 {format_value(row.get('lat_p50_ms'), '{:.2f}')} ms"
            f", p99 {format_value(row.get('lat_p99_ms'), '{:.2f}')} ms"
            f", server CPU {format_value(row.get('server_cpu_pct'), '{:.0f}')} %"
            f", loadgen CPU {format_value(row.get('client_cpu_pct'), '{:.0f}')} %"
        )
        validity = str(row.get("validity") or status)
        if validity != "ok":
            text.append(f"  [{validity}]", style="bold red")
        self._rich.print(text, soft_wrap=True)

    # The end -------------------------------------------------------------------

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Iterable[Column] = TABLE_COLUMNS,
              title: str = "", status: bool = True, caption: str = "") -> None:
        columns = list(columns)
        table = Table(title=title or None, title_justify="left", header_style="bold",
                      caption=caption or None, caption_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False)
        body: list[list[Text]] = []
        for row in rows:
            cells: list[Text] = []
            for column in columns:
                value = row.get(column.key)
                number = _number(value)
                red = column.red_above is not None and number is not None and number > column.red_above
                cells.append(Text(format_value(value, column.fmt), style="bold red" if red else ""))
            body.append(cells)
        needed = 0
        for index, column in enumerate(columns):
            widest = max([len(cells[index].plain) for cells in body]
                         + [len(line) for line in column.header.splitlines()])
            needed += widest + 3
            table.add_column(column.header, justify="left" if column.fmt == "{}" else "right",
                             no_wrap=True, min_width=widest)
        if status:  # the point's validity (duplexbench/measure/validity.py); status for old rows
            table.add_column("validity", no_wrap=True)
            needed += 20
        for row, cells in zip(rows, body):
            if status:
                text = str(row.get("validity") or row.get("status") or "ok")
                style = ("" if text == "ok" else "yellow" if comparable(text) else "bold red")
                cells.append(Text(text, style=style))
            table.add_row(*cells)
        # A terminal narrower than the table: print it wide and let the terminal wrap
        # lines, rather than rich dropping columns or cutting figures to "1…".
        width = self._rich.width
        self._rich.width = max(width, needed)
        try:
            self._rich.print(table)
        finally:
            self._rich.width = width

    def summary_warnings(self) -> None:
        """Every warning again, after the table, where nobody can miss them."""
        if not self.warnings:
            return
        self._rich.print(Text(f"{len(self.warnings)} warning(s):", style="bold yellow"))
        for text in self.warnings:
            self._rich.print(Text(f"  ! {text}", style="yellow"), soft_wrap=True)
