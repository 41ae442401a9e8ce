"""doctor: one line per capability; a part hidden from PATH is named with its fix by doctor,
by `run` before its first point, and by the set-up, which installs only what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from duplexbench.machine import doctor
from duplexbench.machine.setup import install_missing
from duplexbench.scenario import load_scenario
from tests._timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
STATES = (doctor.OK, doctor.MISSING, doctor.FALLBACK)


def path_without(program: str, where: Path) -> str:
    """This PATH with ``program`` hidden: each directory holding it is replaced by a copy made
    of symlinks to everything else it holds (ip, tc and the rest stay found)."""
    dirs = []
    for i, directory in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        if directory and (Path(directory) / program).exists():
            copy = where / f"path{i}"
            copy.mkdir()
            for entry in Path(directory).iterdir():
                if entry.name != program:
                    (copy / entry.name).symlink_to(entry)
            directory = str(copy)
        dirs.append(directory)
    return os.pathsep.join(dirs)


def doctor_cli(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ) if path is None else {**os.environ, "PATH": path}
    return subprocess.run([sys.executable, "-m", "duplexbench", "doctor", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=scaled(60))


def states(stdout: str) -> dict[str, str]:
    """Capability title -> state, from doctor's lines."""
    found = {}
    for line in stdout.splitlines():
        state, _, rest = line.partition(" ")
        for capability in doctor.CAPABILITIES:
            if rest.strip().startswith(capability.title + "  "):
                found[capability.title] = state
    return found


@pytest.fixture(scope="module")
def no_nginx(tmp_path_factory) -> str:
    return path_without("nginx", tmp_path_factory.mktemp("no-nginx"))


@pytest.fixture(scope="module")
def here() -> subprocess.CompletedProcess:
    """doctor on this machine as it is."""
    return doctor_cli()


def test_every_capability_has_one_line_with_the_fix_when_not_ok(here):
    lines = here.stdout.splitlines()
    assert len(lines) == len(doctor.CAPABILITIES), here.stdout
    titles = [c.title for c in doctor.CAPABILITIES]
    for line, title in zip(lines, titles):
        state, _, rest = line.partition(" ")
        assert state in STATES and rest.strip().startswith(title), line
        assert len(rest.strip()) > len(title) + 5, f"nothing found said: {line}"
        assert ("fix: " in line) == (state != doctor.OK), line
    assert here.returncode == (1 if doctor.MISSING in states(here.stdout).values() else 0)


def test_a_machine_without_nginx_is_told_so_and_how_to_fix_it(here, no_nginx):
    hidden = doctor_cli(path=no_nginx)
    line = next(l for l in hidden.stdout.splitlines() if states(l) == {"nginx": doctor.MISSING})
    assert "nginx not found" in line and "apt-get install nginx" in line, line
    assert hidden.returncode == 1
    # Only nginx changed: every other capability reads as on this machine.
    assert {**states(here.stdout), "nginx": doctor.MISSING} == states(hidden.stdout)
    needs = doctor_cli("--scenario", "scenarios/proxy.toml", path=no_nginx)
    assert "needs    nginx: scenarios/proxy.toml: [proxy] puts nginx in the path: MISSING" \
        in needs.stdout, needs.stdout
    assert needs.returncode == 1


def test_run_refuses_a_proxy_scenario_before_its_first_point(no_nginx, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "duplexbench", "run", "scenarios/proxy.toml",
                           "--out", str(out)], cwd=ROOT, env={**os.environ, "PATH": no_nginx},
                          capture_output=True, text=True, timeout=scaled(60))
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert "nginx: nginx not found ([proxy] puts nginx in the path)" in said, said
    assert "apt-get install nginx" in said and "duplexbench doctor" in said, said
    assert not (out / "meta.json").exists()  # refused before anything started


def test_needs_are_read_from_the_points():
    proxy = load_scenario(ROOT / "scenarios" / "proxy.toml")
    assert set(doctor.needed(proxy.points())) == {"nginx", "chromium"}  # engine sweep
    quick = load_scenario(ROOT / "scenarios" / "quick.toml")
    assert doctor.needed(quick.points()) == {}
    assert set(doctor.needed(quick.points(), engine="browser")) == {"chromium"}
    assert set(doctor.needed(quick.points(), extra=["node"])) == {"node"}
    brokered = SimpleNamespace(proxy="none", engine="", broker="redis")
    assert set(doctor.needed([brokered])) == {"redis"}


class Apt:
    """Stands in for apt-get (a test must not change the machine): records each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess:
        self.calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_setup_without_root_names_the_command_and_runs_nothing(monkeypatch, no_nginx):
    monkeypatch.setenv("PATH", no_nginx)
    apt = Apt()
    result = install_missing(["nginx", "curl"], run=apt, is_root=False, apt="/usr/bin/apt-get")
    assert apt.calls == []
    assert result.missing == ("nginx",)
    assert "run `sudo apt-get install nginx`" in result.message, result.message
    assert "\n" not in result.message  # one line


def test_setup_as_root_updates_once_then_installs_what_is_missing(monkeypatch, no_nginx):
    monkeypatch.setenv("PATH", no_nginx)
    apt = Apt()
    result = install_missing(["nginx", "curl"], run=apt, is_root=True, apt="apt-get")
    assert apt.calls == [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]]
    # The stand-in installed nothing: still missing, and said so.
    assert result.missing == ("nginx",) and "still missing" in result.message


def test_setup_with_everything_present_runs_no_command():
    apt = Apt()
    result = install_missing(["curl"], run=apt, is_root=True, apt="apt-get")  # make test has it
    assert apt.calls == [] and result.message == ""
