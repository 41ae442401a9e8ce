"""`build_report` / `python -m duplexbench report`: files, sections, side-by-side runs, banner."""

from __future__ import annotations

import re
import sys
import types

from duplexbench.commands.report import main
from duplexbench.report import build_report


def test_single_run_report(fixture_run):
    run_dir = fixture_run("synthetic-a")
    paths = build_report([run_dir])
    assert paths.markdown == run_dir / "report.md" and paths.html == run_dir / "report.html"
    md, page = paths.markdown.read_text(), paths.html.read_text()
    for heading in ("## Findings", "## Summary", "## Figures", "## Run metadata"):
        assert heading in md
    assert "INCOMPLETE" not in md and 'class="banner"' not in page
    assert 'id="summary-table"' in page
    names = {p.stem for p in paths.figures}
    # Only the figures this run has data for: subscribers swept, rate not, nothing lost.
    assert {"latency_cdf", "latency_vs_clients", "server_cpu_per_1k", "cpu_server_vs_loadgen",
            "server_rss_per_connection", "bytes_per_message", "requests_per_message"} == names
    for path in paths.figures:
        assert path.read_bytes().startswith(b"\x89PNG") and f"({path.parent.name}/{path.name})" in md
    # Self-contained: every image inline, nothing fetched from anywhere.
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == len(paths.figures)
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "WebSocket used 5.5× less server CPU per delivered message than long polling" in page


def test_incomplete_run_shows_banner(fixture_run):
    run_dir = fixture_run("synthetic-incomplete")
    paths = build_report([run_dir])
    page, md = paths.html.read_text(), paths.markdown.read_text()
    banner = page.index('class="banner"')
    assert banner < page.index("<h2")  # at the top, before every section
    assert "INCOMPLETE RUN" in page[banner:banner + 300]
    assert "interrupted (Ctrl-C) after 5 of 12 load points" in page[banner:banner + 400]
    assert md.splitlines()[2].startswith("> **⚠ INCOMPLETE RUN")
    assert '<li class="loud">LOST MESSAGES' in page
    # It sweeps the rate and lost messages: those figures appear, a subscriber sweep does not.
    names = {p.stem for p in paths.figures}
    assert {"latency_vs_rate_msgs_s", "delivery"} <= names and "latency_vs_clients" not in names


def test_two_runs_side_by_side(fixture_run, tmp_path):
    a, b = fixture_run("synthetic-a"), fixture_run("synthetic-b")
    out = tmp_path / "ab"
    paths = build_report([a, b], out)
    assert paths.html == out / "report-side-by-side.html"
    md = paths.markdown.read_text()
    assert md.startswith("# duplexbench report: A (synthetic-a) vs B (synthetic-b)")
    assert "### Run A (synthetic-a)" in md and "### Run B (synthetic-b)" in md
    assert "Run B vs run A, WebSocket at 500 subscribers" in md
    # Metadata side by side: one column per run.
    assert "|  | run A | run B |" in md and "synthetic-host-a" in md and "synthetic-host-b" in md
    page = paths.html.read_text()
    assert 'id="summary-table"' in page and 'id="summary-table-B"' in page
    # Default output for several runs: the first run's directory, without replacing its report.
    (a / "report.html").write_text("run A's own report")
    default = build_report([a, b])
    assert default.html == a / "report-side-by-side.html"
    assert (a / "report.html").read_text() == "run A's own report"


def test_cli(fixture_run, tmp_path, capsys):
    run_dir = fixture_run("synthetic-a")
    assert main([str(run_dir), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").exists()
    assert "report.html" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing-here")]) == 2
    assert "no meta.json" in capsys.readouterr().err


def test_claims_section_when_module_present(fixture_run, monkeypatch):
    seen = []

    def claim_rows(runs):
        seen.append([r.run_id for r in runs])
        return [{"source": "RFC 6455 §5.2", "claim": "server frame header is 2 bytes",
                 "prediction": 2, "measurement": 2.0, "ratio": 1.0, "verdict": "confirmed"}]

    monkeypatch.setitem(sys.modules, "duplexbench.report.claims",
                        types.SimpleNamespace(claim_rows=claim_rows))
    paths = build_report([fixture_run("synthetic-a")])
    assert seen == [["synthetic-a"]]
    page = paths.html.read_text()
    assert "What the documents claim, measured" in page and "RFC 6455 §5.2" in page
    assert '<td class="verdict-confirmed">confirmed</td>' in page


def test_claims_section_absent_without_module(fixture_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "duplexbench.report.claims", None)  # import fails
    paths = build_report([fixture_run("synthetic-a")])
    assert "What the documents claim" not in paths.markdown.read_text()


def test_claims_failure_does_not_cost_the_report(fixture_run, monkeypatch):
    def claim_rows(runs):
        raise KeyError("delay_ms")

    monkeypatch.setitem(sys.modules, "duplexbench.report.claims",
                        types.SimpleNamespace(claim_rows=claim_rows))
    md = build_report([fixture_run("synthetic-a")]).markdown.read_text()
    assert "claims could not be computed: KeyError" in md and "## Findings" in md


def test_run_without_samples_or_points(fixture_run):
    run_dir = fixture_run("synthetic-incomplete")
    (run_dir / "samples.parquet").unlink()
    (run_dir / "load.parquet").unlink()
    assert "latency_cdf" not in {p.stem for p in build_report([run_dir]).figures}
    (run_dir / "summary.csv").write_text("")  # interrupted before the first point finished
    md = build_report([run_dir]).markdown.read_text()
    assert "No load point finished" in md and "INCOMPLETE RUN" in md


def test_report_is_deterministic_apart_from_timestamp(fixture_run):
    run_dir = fixture_run("synthetic-incomplete")
    first = build_report([run_dir]).markdown.read_text()
    second = build_report([run_dir]).markdown.read_text()
    strip = lambda text: re.sub(r"_Generated .*_", "", text)  # noqa: E731
    assert strip(first) == strip(second)
