"""What a reader of the regression verdicts must know besides them: the normalisation factor
(``--normalize``) and the runs' circumstances (injected regressions, other scenarios, other
CPUs, the current run's warnings). Split from :mod:`duplexbench.compare.runs`; pure: run metadata in,
sentences out.
"""

from __future__ import annotations

from ..measure.results import Run

__all__ = ["meta_notes", "normalisation"]


def normalisation(base: Run, cur: Run) -> tuple[float, str]:
    """Factor current latencies are divided by: ratio of the runs' echo floors, measured in
    the scenario's regime (its rate, its pinning; duplexbench/machine/calibration.py). The hot-loop
    figure of older runs describes another regime (~20 us against ~240 us at 100 msg/s), so
    a run without the at-rate figure cannot be normalised."""
    key = "echo_at_rate_us_p50"
    cals = [(name, run.meta.get("calibration") or {}) for name, run in
            (("baseline", base), ("current", cur))]
    for side, cal in cals:
        if not cal.get(key):
            what = ("only the hot-loop echo (recorded before the at-rate calibration)"
                    if cal.get("tcp_echo_rtt_us_p50") else "no calibration")
            fix = "refresh it (make baseline)" if side == "baseline" else "re-run it"
            raise ValueError(f"--normalize: the {side} run has {what}; normalising needs "
                             f"meta.json calibration.{key}, the echo at the scenario's rate "
                             f"and pinning: {fix} with this duplexbench")
    b, c = float(cals[0][1][key]), float(cals[1][1][key])
    factor = c / b
    note = (f"normalised: current latencies divided by {factor:.3f} (TCP echo p50 at the "
            f"scenario's rate {c:.1f} us current vs {b:.1f} us baseline)")
    rates = [(cal.get("echo_at_rate") or {}).get("rate_hz") for _, cal in cals]
    if rates[0] != rates[1]:
        note += f"; the echoes ran at different rates ({rates[0]} vs {rates[1]} Hz)"
    return factor, note


def meta_notes(base: Run, cur: Run, normalize: bool) -> list[str]:
    """What a reader must know before trusting the verdicts."""
    notes = []
    b_inj, c_inj = base.meta.get("inject") or {}, cur.meta.get("inject") or {}
    if any(v for v in c_inj.values()):
        notes.append(f"current run has an injected regression: {c_inj} (DUPLEXBENCH_INJECT_*)")
    if any(v for v in b_inj.values()):
        notes.append(f"baseline has an injected regression: {b_inj}; refresh it (make baseline)")
    b_name = (base.meta.get("scenario") or {}).get("name")
    c_name = (cur.meta.get("scenario") or {}).get("name")
    if b_name != c_name:
        notes.append(f"different scenarios: baseline {b_name!r}, current {c_name!r}")
    b_cpu, c_cpu = base.meta.get("cpu_model"), cur.meta.get("cpu_model")
    if not normalize and b_cpu != c_cpu:
        notes.append(f"different CPUs ({b_cpu!r} vs {c_cpu!r}): latency differences may be the "
                     "machine; consider --normalize")
    warnings = list(cur.meta.get("warnings") or [])
    for text in warnings[:3]:
        notes.append(f"current run warning: {text}")
    if len(warnings) > 3:
        notes.append(f"current run: {len(warnings) - 3} more warnings in its meta.json")
    return notes
