"""Tests of the regression gate: duplexbench.stats, .compare, .calibration."""
