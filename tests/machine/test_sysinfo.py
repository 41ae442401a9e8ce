"""Machine metadata: complete, JSON-able, and never fatal."""

from __future__ import annotations

import json
import subprocess

from duplexbench.machine import sysinfo


def test_collect_metadata_has_the_fields_meta_json_needs():
    meta = sysinfo.collect_metadata()
    for key in ("python", "packages", "cpu_model", "cpu_count", "cpu_freq", "kernel",
                "hostname", "os", "git", "memory_total_gb", "date"):
        assert key in meta
    assert meta["python"]["version"].startswith("3.")
    assert set(sysinfo.PACKAGES) <= set(meta["packages"])
    assert meta["packages"]["pandas"]  # installed in the venv the tests run in
    assert meta["cpu_count"] >= 1
    json.dumps(meta)


def test_git_info_is_none_outside_a_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(sysinfo, "_REPO", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert sysinfo.git_info() is None


def test_collect_metadata_never_raises(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("probe failed")

    monkeypatch.setattr(sysinfo, "package_versions", broken)
    monkeypatch.setattr(sysinfo, "cpu_model", broken)
    monkeypatch.setattr(sysinfo, "git_info", broken)
    monkeypatch.setattr(subprocess, "run", broken)
    meta = sysinfo.collect_metadata()
    assert meta["packages"] == {} and meta["cpu_model"] is None and meta["git"] is None
