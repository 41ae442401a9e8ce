"""The capacity command runs points like `run` does: the runner tests' fake engine and guards."""

from tests.runner.conftest import fake_engine, keep_signal_handlers, no_calibration  # noqa: F401
