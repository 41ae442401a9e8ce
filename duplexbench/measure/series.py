"""Process series: one continuous series per role, whatever processes played it.

A role's process may be replaced during a point (a restart fault starts a new
server; a broker may respawn a worker): the sampler names the newcomers
``NAME@1``, ``NAME@2``... and this module folds them back into ``NAME``, so the
figures of a point (CPU per message, peak memory) stay the role's.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["merge_generations"]

#: Cumulative columns: a new process counts from zero, so earlier totals are added.
_CUMULATIVE = ("cpu_user_s", "cpu_system_s", "cpu_sched_s")


def merge_generations(load: pd.DataFrame) -> pd.DataFrame:
    """One ``NAME`` series out of ``NAME``, ``NAME@1``, ``NAME@2``…

    Each restarted process counts CPU from zero; the old process's last
    cumulative figures are added to the next one's, so CPU seconds stay
    cumulative (what metrics.process_stats expects) across restarts.
    """
    if load is None or not len(load) or "process" not in load:
        return load
    generations: dict[str, list[str]] = {}
    for name in load["process"].unique():
        base, at, number = str(name).partition("@")
        if at and number.isdigit():
            generations.setdefault(base, []).append(str(name))
    if not generations:
        return load
    frame = load.copy()
    cumulative = [c for c in _CUMULATIVE if c in frame]
    for base, names in generations.items():
        names.sort(key=lambda n: int(n.split("@", 1)[1]))
        offsets = dict.fromkeys(cumulative, 0.0)
        previous = frame[frame["process"] == base].sort_values("t_s")
        for name in names:
            mask = frame["process"] == name
            current = frame[mask].sort_values("t_s")
            for column in cumulative:
                if len(previous) and previous[column].notna().any():
                    offsets[column] += float(previous[column].dropna().iloc[-1])
                frame.loc[mask, column] = frame.loc[mask, column] + offsets[column]
            frame.loc[mask, "process"] = base
            previous = current
    return frame.sort_values(["process", "t_s"], kind="stable").reset_index(drop=True)
