"""``engines --floor``'s summary and tables, and how often its verdict holds.

Why apart from the runs (duplexbench/benchmarks/floor.py): a verdict ("native ÷ floor ≤ 1.3
for every transport") is only as good as its rate of holding on a rerun. This machine's
noise moves one invocation's medians by up to 0.2, so each summary says, per transport, how
many repeats were within the target and an estimate of how often a rerun of the same size
would give the same verdict (a bootstrap of the repeats); :func:`tally` counts, over several
invocations' ``floor.json``, how many actually met it: the measured rate.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

__all__ = ["BOOTSTRAP", "TARGET", "load_floor_json", "markdown", "render", "rerun_rates",
           "summarize", "tally", "tally_markdown", "verdict",
           "verdict_line"]

#: The engine should cost at most this many times the floor (issue "a load generator at the
#: kernel's floor").
TARGET = 1.3
#: Bootstrap resamples behind the rerun estimates; a fixed seed: the same rows, the same text.
BOOTSTRAP = 4000
_SEED = 20261206


def _pairs(rows: list[dict], transport: str) -> dict[int, dict[str, dict]]:
    pairs: dict[int, dict[str, dict]] = {}
    for r in rows:
        if r["transport"] == transport:
            pairs.setdefault(r["repeat"], {})[r["client"]] = r
    return pairs


def _ratios(pairs: dict[int, dict[str, dict]], key: str) -> list[float]:
    out = []
    for pair in pairs.values():
        floor, native = pair.get("floor"), pair.get("native")
        if floor and native and floor[key] and native[key]:
            out.append(native[key] / floor[key])
    return out


def summarize(rows: list[dict], target: float = TARGET) -> list[dict]:
    """Per transport: each repeat's native ÷ floor (client ÷ server figures), median and
    spread, the repeats within ``target`` and the rerun estimate of the verdict."""
    out = []
    for transport in dict.fromkeys(r["transport"] for r in rows):
        pairs = _pairs(rows, transport)
        ratios = _ratios(pairs, "client_per_server")

        def figure(client: str, key: str) -> list[float]:
            return [p[client][key] for p in pairs.values() if client in p and p[client][key]]

        def publisher_share(client: str) -> list[float]:
            return [p[client]["publisher_cpu_s"] / p[client]["server_cpu_s"]
                    for p in pairs.values() if client in p and p[client]["server_cpu_s"]]

        med = statistics.median(ratios) if ratios else None
        out.append({
            "transport": transport, "repeats": len(ratios),
            "floor_client_per_server": _spread(figure("floor", "client_per_server")),
            "native_client_per_server": _spread(figure("native", "client_per_server")),
            "native_per_floor": _spread(ratios),
            "native_per_floor_with_publisher": _spread(_ratios(pairs, "with_publisher_per_server")),
            # The server's CPU moves with its client (wake-ups, batching), so the client's
            # own CPU per delivery is given beside the ratio of ratios.
            "native_per_floor_per_delivery": _spread(_ratios(pairs, "client_us_per_delivery")),
            "floor_publisher_per_server": _spread(publisher_share("floor")),
            "native_publisher_per_server": _spread(publisher_share("native")),
            "within_target": None if med is None else med <= target,
            "repeats_within_target": sum(r <= target for r in ratios),
        })
    rates = rerun_rates(out, target)
    for s in out:
        s["rerun_agrees"] = rates["per_transport"].get(s["transport"])
    return out


def rerun_rates(summary: list[dict], target: float = TARGET) -> dict:
    """How often a rerun with as many repeats gives the same verdicts, estimated by
    resampling each transport's repeats (with replacement) ``BOOTSTRAP`` times: per
    transport, the share of resampled medians on the same side of ``target``; and the
    share of resamples in which every transport is within it (the command's headline)."""
    rng = np.random.default_rng(_SEED)
    inside = {}
    for s in summary:
        values = np.array((s["native_per_floor"] or {}).get("values") or [], dtype=float)
        if len(values) == 0:
            continue
        draws = values[rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))]
        inside[s["transport"]] = np.median(draws, axis=1) <= target
    per_transport = {}
    for s in summary:
        if s["transport"] in inside:
            same = inside[s["transport"]] if s["within_target"] else ~inside[s["transport"]]
            per_transport[s["transport"]] = round(float(same.mean()), 3)
    every = (round(float(np.logical_and.reduce(list(inside.values())).mean()), 3)
             if inside else None)
    return {"per_transport": per_transport, "all_within_target": every}


def _spread(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "values": [round(v, 3) for v in values]}


def _fmt(s: dict | None) -> str:
    return "-" if s is None else f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def verdict(summary: list[dict], target: float = TARGET) -> dict:
    """Whether every transport is within ``target`` (None: nothing measured) and the estimated
    share of reruns of as many repeats that say the same."""
    judged = [s for s in summary if s["within_target"] is not None]
    if not judged:
        return {"all_within_target": None, "rerun_agrees_estimate": None, "above": []}
    every = all(s["within_target"] for s in judged)
    rate = rerun_rates(summary, target)["all_within_target"]
    return {"all_within_target": every,
            "rerun_agrees_estimate": None if rate is None else round(rate if every else 1 - rate, 3),
            "above": [s["transport"] for s in judged if not s["within_target"]],
            "repeats": max(s["repeats"] for s in judged)}


def verdict_line(summary: list[dict], target: float = TARGET) -> str:
    """One line: every transport within the target or not, and how often a rerun agrees."""
    v = verdict(summary, target)
    if v["all_within_target"] is None:
        return "No verdict: no pair of runs measured."
    return (f"Every transport within {target}: **{'yes' if v['all_within_target'] else 'no'}**"
            + ("" if v["all_within_target"] else f" ({', '.join(v['above'])} above)")
            + f"; a rerun of {v['repeats']} repeats agrees ~{_pct(v['rerun_agrees_estimate'])} "
            "of the time (bootstrap of these repeats; measured over invocations: "
            "`engines --floor --tally`).")


def markdown(summary: list[dict], rows: list[dict], head: str, target: float = TARGET) -> str:
    lines = [head, "",
             "| transport | floor client/server | native client/server | native ÷ floor "
             "| incl. publisher | client CPU per delivery, native ÷ floor "
             f"| publisher/server (floor run, native run) | target ≤ {target} "
             "| repeats ≤ target | a rerun agrees |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        verdict = "-" if s["within_target"] is None else "yes" if s["within_target"] else "no"
        lines.append(f"| {s['transport']} | {_fmt(s['floor_client_per_server'])} | "
                     f"{_fmt(s['native_client_per_server'])} | {_fmt(s['native_per_floor'])} | "
                     f"{_fmt(s['native_per_floor_with_publisher'])} | "
                     f"{_fmt(s['native_per_floor_per_delivery'])} | "
                     f"{_fmt(s['floor_publisher_per_server'])}, "
                     f"{_fmt(s['native_publisher_per_server'])} | {verdict} | "
                     f"{s.get('repeats_within_target', '-')}/{s['repeats']} | "
                     f"{_pct(s.get('rerun_agrees'))} |")
    lines += ["", verdict_line(summary, target)]
    lines += ["", "Median (min-max) over repeats. Every run:", "",
              "| transport | client | repeat | server s | client s | publisher s | client/server "
              "| us/delivery | deliveries | lost | reads/delivery | segs up/msg |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join("-" if r[k] is None else str(r[k]) for k in (
            "transport", "client", "repeat", "server_cpu_s", "client_cpu_s", "publisher_cpu_s",
            "client_per_server", "client_us_per_delivery", "deliveries", "lost",
            "reads_per_delivery", "segments_up_per_msg")) + " |")
    return "\n".join(lines) + "\n"


def load_floor_json(path: Path) -> dict:
    """A run's floor.json (``path`` the file or its directory); ValueError says why not."""
    path = Path(path)
    if path.is_dir():
        path = path / "floor.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not an engines --floor result ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path}: not an engines --floor result (no rows)")
    data["path"] = str(path)
    return data


def render(path: Path) -> str:
    """floor.md again from a run's floor.json (after a change to the summary)."""
    data = load_floor_json(path)
    target = data.get("target", TARGET)
    return markdown(summarize(data["rows"], target), data["rows"], f"engines --floor: {path}",
                    target)


def tally(paths: list[Path], target: float = TARGET) -> dict:
    """Over several invocations (their floor.json): per transport, how many had their median
    within ``target``, and how many had every transport within it: the measured rate of
    holding of the command's verdict (each summary recomputed from its rows)."""
    runs = []
    for path in paths:
        data = load_floor_json(path)
        summary = summarize(data["rows"], target)
        runs.append({"path": data["path"], "repeats": max((s["repeats"] for s in summary), default=0),
                     "medians": {s["transport"]: (s["native_per_floor"] or {}).get("median")
                                 for s in summary},
                     "within": {s["transport"]: s["within_target"] for s in summary}})
    transports = list(dict.fromkeys(t for run in runs for t in run["within"]))
    per_transport = {t: {"within": sum(bool(run["within"].get(t)) for run in runs),
                         "of": sum(run["within"].get(t) is not None for run in runs)}
                     for t in transports}
    for run in runs:  # only an invocation that measured every transport has the verdict
        run["every"] = (all(run["within"].get(t) for t in transports)
                        if all(run["within"].get(t) is not None for t in transports) else None)
    judged = [run for run in runs if run["every"] is not None]
    return {"target": target, "invocations": len(runs), "judged": len(judged),
            "all_within": sum(run["every"] for run in judged),
            "per_transport": per_transport, "runs": runs}


def tally_markdown(result: dict) -> str:
    transports = list(result["per_transport"])
    lines = [f"engines --floor --tally: {result['invocations']} invocations, target ≤ "
             f"{result['target']}", "",
             "| invocation | repeats | " + " | ".join(transports) + " | every transport within |",
             "|---|---|" + "---|" * len(transports) + "---|"]
    for run in result["runs"]:
        cells = []
        for t in transports:
            median, within = run["medians"].get(t), run["within"].get(t)
            cells.append("-" if median is None else f"{median:.2f} {'yes' if within else 'no'}")
        every = {None: "- (not every transport)", True: "yes", False: "no"}[run["every"]]
        lines.append(f"| {run['path']} | {run['repeats']} | " + " | ".join(cells) + f" | {every} |")
    counts = " | ".join(f"{c['within']}/{c['of']}" for c in result["per_transport"].values())
    lines.append(f"| **within target** | | {counts} | **{result['all_within']}/"
                 f"{result['judged']}** |")
    return "\n".join(lines) + "\n"
