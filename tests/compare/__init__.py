"""Tests of the regression gate: duplexbench.compare.stats, .compare, .calibration."""
