"""One line per measured ratio, so ``run_all.py`` can print every benchmark's ratios in one table.

Each script prints its own detailed table and, when ``$FPR_BENCH_RESULTS`` names a file, also
appends one JSON line per ratio there (``record``). ``run_all.py`` sets the variable, runs every
script, then prints the lines side by side with the goal next to each.
"""

from __future__ import annotations

import json
import os

ENV = "FPR_BENCH_RESULTS"


def record(
    benchmark: str,
    scenario: str,
    value: float,
    *,
    unit: str = "x",
    goal: float | None = None,
    higher_is_better: bool = False,
    note: str = "",
    cpu: float | None = None,
) -> None:
    """Append one ratio (``value`` in ``unit``: ``x`` for ours/baseline, ``%``, ``ms``, ``calls``) and its goal.

    ``value`` is the wall-clock figure (what a user waits for) and the goal is judged on it;
    ``cpu`` is the same ratio on CPU time, printed beside it, because on a busy machine wall time
    also measures the neighbours while CPU time mostly does not.
    """
    path = os.environ.get(ENV)
    if not path:
        return
    met = None if goal is None else (value >= goal if higher_is_better else value <= goal)
    line = {
        "benchmark": benchmark,
        "scenario": scenario,
        "value": value,
        "unit": unit,
        "goal": goal,
        "higher_is_better": higher_is_better,
        "met": met,
        "note": note,
        "cpu": cpu,
    }
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
