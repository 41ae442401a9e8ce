"""The console: readable plain logs off a terminal, the final table, warnings once."""

from __future__ import annotations

import io
import re

from duplexbench.console import Console, format_value


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


ROW = {"transport": "websocket", "clients": 10, "rate_msgs_s": 200.0, "delivered": 6000,
       "lost": 3, "lat_p50_ms": 1.234, "lat_p99_ms": 9.87, "lat_max_ms": 12.0,
       "sent_p99_ms": 8.0, "server_cpu_pct": 12.3, "client_cpu_pct": 95.0,
       "bytes_down_per_msg": 127.0, "http_requests_per_msg": 0.0, "status": "lost"}


def test_plain_progress_is_one_line_per_event():
    out = io.StringIO()
    console = Console(file=out)
    assert not console.interactive
    progress = console.point("websocket c=10", 1, 2)
    progress.phase("warmup", 1.0)
    progress.update(sent=5, delivered=50)
    progress.phase("measure", 2.0)
    progress.update(sent=15, delivered=150)
    progress.close()
    progress.close()  # idempotent: the runner closes on every path
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines() == [
        "[1/2] websocket c=10",
        "  warmup 1 s",
        text.splitlines()[2],
        "  measure 2 s",
        text.splitlines()[4],
    ]
    assert "sent 5, delivered 50" in text and "sent 15, delivered 150" in text


def test_table_marks_lost_and_saturated_in_red():
    out = FakeTTY()
    console = Console(file=out)
    console.table([ROW, {**ROW, "lost": 0, "client_cpu_pct": 10.0, "status": "ok"}])
    text = out.getvalue()
    assert "websocket" in text and "6,000" in text and "9.87" in text
    red = re.compile(r"\x1b\[1;31m\s*(\S+)\s*\x1b\[0m")
    assert red.findall(text) == ["3", "95", "lost"]  # lost > 0, loadgen > 90 %, status


def test_quiet_console_still_prints_table_and_warnings_once():
    out = io.StringIO()
    console = Console(file=out, quiet=True)
    console.warn("the load generator used 95% of a core")
    console.warn("the load generator used 95% of a core")
    console.point("x", 1, 1).close()
    console.table([ROW])
    console.summary_warnings()
    text = out.getvalue()
    assert "[1/1]" not in text
    assert text.count("the load generator used 95% of a core") == 1
    assert "1 warning(s)" in text and "websocket" in text


def test_format_value():
    assert format_value(float("nan"), "{:.2f}") == "–"
    assert format_value(None, "{:.2f}") == "–"
    assert format_value(1.5, "{:.2f}") == "1.50"
    assert format_value("x", "{:.2f}") == "x"
