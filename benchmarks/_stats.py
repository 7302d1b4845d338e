"""Summaries every benchmark shares: min/median/max, paired ratios and deltas, CPU clocks, ``--quick``.

Why one module: the issue asks the same honesty of every script (warm-up runs, repeated paired
runs, min/median/max, CPU beside wall), and numbers are only comparable across scripts when they
are computed the same way. A paired ratio is the median of per-pair ratios (ours in run *i*
against the baseline in run *i*, run back to back), not a ratio of medians: pairing cancels
most of the drift a busy machine adds between runs.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
from collections.abc import Sequence


def quick() -> bool:
    """``--quick`` on the command line: fewer runs and scenarios (``./dev bench --quick``)."""
    return "--quick" in sys.argv[1:]


def spread(values: Sequence[float], scale: float = 1000.0, digits: int = 1, width: int = 7) -> str:
    """``min median max`` of ``values`` times ``scale`` (seconds to ms by default), fixed width."""
    return " ".join(f"{scale * v:{width}.{digits}f}" for v in (min(values), statistics.median(values), max(values)))


def paired_ratios(ours: Sequence[float], base: Sequence[float]) -> list[float]:
    """``ours[i] / base[i]`` for each pair (their spread says how far one pair can be trusted)."""
    return [o / b for o, b in zip(ours, base, strict=True)]


def paired_ratio(ours: Sequence[float], base: Sequence[float]) -> float:
    """Median of ``ours[i] / base[i]`` (runs paired by index)."""
    return statistics.median(paired_ratios(ours, base))


def paired_deltas(ours: Sequence[float], base: Sequence[float]) -> list[float]:
    """``ours[i] - base[i]`` for each pair (min/median/max of these is what a delta goal is judged on)."""
    return [o - b for o, b in zip(ours, base, strict=True)]


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far, grandchildren included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    """CPU seconds (user + system) of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used, from ``/proc/PID/stat`` (10 ms ticks).

    For daemons doing work on a client's behalf (dockerd answers flytekit's ``exist()``), whose
    CPU no ``rusage`` of ours includes.
    """
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    # after "pid (comm)": state is field 0, utime 11, stime 12 (fields 14 and 15 of proc(5))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads_cpu(pid: int) -> float:
    """CPU seconds a running process's live threads have used, in nanoseconds' detail (``/proc/PID/task/*/schedstat``).

    For a window of tens of milliseconds, where :func:`process_cpu`'s 10 ms ticks are too coarse.
    A thread that exits within the window takes its time with it; a Go server keeps its threads.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as handle:
                total += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that exited meanwhile
            continue
    return total / 1e9


def cache_bytecode() -> None:
    """Let this process's children write ``.pyc`` files, as an installed package has them.

    ``pip install`` compiles every module, so flytekit's imports read bytecode; a checkout run
    under ``PYTHONDONTWRITEBYTECODE=1`` (set in some shells and CI images) would compile every
    module of ours from source in every fresh process, a cost no user pays. The warm-up runs
    write the files; the measured runs read them.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
