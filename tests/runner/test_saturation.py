"""A real point driven past what the load generator can do: findings must not compare there.

High rate, tiny duration, real servers, and the Locust engine as the load
generator: per message it costs several times the server's CPU, so it is the
one that gives out. It shows as its core above 90 %, or (on a machine busy with
other work, where a saturated process gets less than 90 % of a core) as a
publisher that sent far fewer messages than its schedule asked for: either way
validity ``loadgen-saturated`` (or ``both-saturated``; ``lost`` with the saturation in
its notes when the saturated subscribers also lost messages), and no finding may
compare transports there without saying so.
"""

from __future__ import annotations

import json


from duplexbench.commands import run as run_command

from duplexbench.measure.validity import comparable
from duplexbench.report import findings
from duplexbench.report.load import load_run_dir

OVERLOAD = {
    "name": "overload", "transports": ["sse", "websocket"], "clients": [100],
    "rate": [4000], "payload_bytes": [32], "warmup_s": 0.3, "duration_s": 1.0, "drain_s": 0.5,
    "expect_loss": False,
}


def _toml(data: dict) -> str:
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in data.items()) + "\n[server]\nuvloop = true\n"


def test_overloaded_point_is_not_compared_without_saying_so(tmp_path, no_calibration, capsys):
    scenario = tmp_path / "overload.toml"
    scenario.write_text(_toml(OVERLOAD))
    out = tmp_path / "run"
    run_command.main([str(scenario), "--out", str(out), "--no-report", "--quiet",
                 "--engine", "locust", "--workers", "1"])
    capsys.readouterr()
    run = load_run_dir(out)
    rows = run.summary
    assert len(rows) == 2, rows
    validity = dict(zip(rows["transport"], rows["validity"]))
    # A saturated load generator may also lose messages (its subscribers fall behind past the
    # drain): ``lost`` outranks it then, and the saturation stays in the notes.
    saturated = {t for t, v, notes in zip(rows["transport"], rows["validity"],
                                          rows["validity_notes"].fillna(""))
                 if v in ("loadgen-saturated", "both-saturated") or "saturated" in notes}
    assert saturated, (
        f"4,000 msg/s to 100 Locust subscribers did not saturate the load generator: {validity}; "
        f"notes {list(rows['validity_notes'])}; "
        f"loadgen CPU {list(rows['client_cpu_pct'])}, sent {list(rows['sent'])}")
    assert not any(comparable(v) for v in validity.values()), validity
    result = findings.run_findings(run)
    notices = " ".join(f.text for f in result if f.kind == "not-comparable")
    assert "at 100 subscribers" in notices.lower()
    for transport, v in validity.items():
        if not comparable(v):
            name = {"sse": "SSE", "websocket": "WebSocket"}[transport]
            assert name in notices, (transport, v, notices)
            if v in ("loadgen-saturated", "both-saturated"):
                assert "load generator" in notices
    compared = [f for f in result if f.kind in ("compare", "tie") and f.metric]
    assert compared == [], [f.text for f in compared]
