"""Run every benchmark, keep each one's detailed output, then print one table of every ratio beside its goal.

Why one table: the scripts print their own detail (min/median/max, CPU beside wall, request
counts), which is what to read when a number moves, but the question "which goals of issue 10
are met today" needs every ratio in one place. Each script appends its ratios to
``$FPR_BENCH_RESULTS`` (``_results.record``); this runner points that at a temporary file and
prints the lines at the end, in the order the scripts ran.

Nothing is asserted: a missed goal is a measurement, so the exit status is nonzero only when a
script itself failed (crashed, or its rig would not start). ``--quick`` is passed on to every
script (fewer runs and scenarios); ``--only NAME[,NAME]`` runs a subset; ``--results FILE``
keeps the JSON lines. ``./dev bench --quick`` passes its arguments through nox to here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _results import ENV  # noqa: E402

#: Cheap ones first, so a broken rig shows early; any new script runs after these, by name.
ORDER = ("import_cost", "task_import", "first_check", "existence_check", "ecr_tokens", "pyflyte_package")


def scripts(only: set[str]) -> list[Path]:
    """The benchmark scripts to run: every ``*.py`` here but this one and the ``_`` helpers."""
    found = {p.stem: p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != Path(__file__).name}
    unknown = only - set(found)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(found))}")
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    return [found[n] for n in names if not only or n in only]


def _value(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "ms":
        return f"{value:+.1f} ms"
    if unit == "calls":
        return f"{value:g}"
    return f"{value:.3g} {unit}"


def _goal(row: dict) -> str:
    goal = row.get("goal")
    if goal is None:
        return ""
    return f"{'>=' if row.get('higher_is_better') else '<='} {_value(goal, row.get('unit', 'x'))}"


def table(rows: list[dict], failures: dict[str, int]) -> str:
    """The summary: benchmark, scenario, wall value, CPU value, goal, ok/MISSED, note."""
    header = ("benchmark", "scenario", "value", "CPU", "goal", "met", "note")
    lines = []
    for row in rows:
        met = row.get("met")
        cpu = row.get("cpu")
        lines.append(
            (
                row["benchmark"],
                row["scenario"],
                _value(row["value"], row.get("unit", "x")),
                "" if cpu is None else _value(cpu, row.get("unit", "x")),
                _goal(row),
                "" if met is None else ("ok" if met else "MISSED"),
                row.get("note", ""),
            )
        )
    for name, code in failures.items():
        lines.append((name, "(script failed: its rows above may be missing)", "", "", "", f"exit {code}", ""))
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header) - 1)]
    aligned = (0, 1, 6)  # left-aligned columns; numbers are right-aligned
    out = []
    for line in [header, *lines]:
        cells = [
            str(cell).ljust(widths[i]) if i in aligned else str(cell).rjust(widths[i])
            for i, cell in enumerate(line[:-1])
        ]
        out.append("  ".join(cells) + ("  " + line[-1] if line[-1] else ""))
    out.insert(1, "-" * max(len(x) for x in out))
    return "\n".join(line.rstrip() for line in out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and scenarios, passed to every script")
    parser.add_argument("--only", default="", help="comma-separated script names (e.g. first_check,ecr_tokens)")
    parser.add_argument("--results", type=Path, help="also keep the recorded JSON lines in this file")
    # `./dev bench -- --quick` reaches here as `-- --quick` (nox keeps a second `--`): drop it.
    args = parser.parse_args([a for a in sys.argv[1:] if a != "--"])
    selected = scripts({n.strip().removesuffix(".py") for n in args.only.split(",") if n.strip()})

    handle, path = tempfile.mkstemp(prefix="fpr-bench-results-", suffix=".jsonl")
    os.close(handle)
    env = {**os.environ, ENV: path}
    failures: dict[str, int] = {}
    times: list[tuple[str, float]] = []
    started = time.perf_counter()
    try:
        for script in selected:
            print(f"\n== {script.name}{' --quick' if args.quick else ''}", flush=True)
            begun = time.perf_counter()
            command = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
            code = subprocess.run(command, env=env, check=False).returncode
            times.append((script.stem, time.perf_counter() - begun))
            if code != 0:
                failures[script.stem] = code
                print(f"== {script.name} FAILED (exit {code})", flush=True)
        text = Path(path).read_text(encoding="utf-8")
        if args.results is not None:
            args.results.write_text(text, encoding="utf-8")
    finally:
        os.unlink(path)

    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    total = time.perf_counter() - started
    met = sum(r.get("met") is True for r in rows)
    missed = sum(r.get("met") is False for r in rows)
    print(f"\n== summary{' (--quick)' if args.quick else ''}: every recorded ratio; 'value' is wall time, judged")
    print("   against the goal; 'x' = ours / baseline (lower is better), 'ms' = ours - baseline")
    print(table(rows, failures))
    print(f"\n{met} goals met, {missed} missed, {len(rows) - met - missed} rows without a goal")
    print("runtime: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in times) + f"; total {total:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
