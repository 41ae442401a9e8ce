"""Fixtures of the runner tests: signal handlers restored, calibration off, a fake engine."""

from __future__ import annotations

import signal
import sys

import pytest


from duplexbench.runner.session import Session

from .helpers import FAKE


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """run_command.main installs SIGTERM/SIGHUP handlers; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def no_calibration(monkeypatch):
    monkeypatch.setattr(Session, "_calibrate", lambda self: None)


@pytest.fixture
def fake_engine(monkeypatch, no_calibration):
    """``fake_engine("crash")``: the runner starts fake_loadgen.py in that mode."""

    def use(mode: str) -> None:
        def command(engine, spec_path, out_dir, workers):
            return [sys.executable, str(FAKE), mode, str(spec_path), str(out_dir)]

        monkeypatch.setattr("duplexbench.runner.generator.loadgen_command", command)

    return use
