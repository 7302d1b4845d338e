"""What the library adds to ``import flytekit``, and what ``from flyte_private_registry import PrivateRegistry`` costs.

In fresh processes (warm-up runs first), each run times ``import flytekit`` and, inside it, the
loading of our entry point (``EntryPoint.load`` wrapped with a timer: ``-X importtime`` cannot see
it, because ``importlib.import_module`` bypasses the interpreter's import-time log), then
``from flyte_private_registry import PrivateRegistry`` in the same process. CPU time beside wall
time, min/median/max over the runs, and the ratios (median of per-run ratios). Goal (issue 10):
``from flyte_private_registry import PrivateRegistry`` <= 1 % of ``import flytekit``. The plugin
entry point is held to the same 1 % (this script's own goal: every ``import flytekit`` pays it,
whether or not the library is used). Both ratios go to the summary table (``_results.record``).
``--quick``: 1 warm-up and 5 runs instead of 2 and 11.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from _results import record
from _stats import cache_bytecode, quick, spread

WARMUP = 2
RUNS = 11
HEAVY = ("boto3", "botocore", "kubernetes", "httpx", "google.auth", "yaml_rust")
GOAL = 0.01

_PROBE = """
import importlib, json, sys, time
ours = [0.0, 0.0]
def wrap(cls):
    original = cls.load
    def timed(self):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return original(self)
        finally:
            if self.value.startswith("flyte_private_registry"):
                ours[0] += time.process_time() - cpu
                ours[1] += time.perf_counter() - wall
    cls.load = timed
for name in ("importlib.metadata", "importlib_metadata"):  # flytekit uses either, by Python version
    try:
        wrap(importlib.import_module(name).EntryPoint)
    except ImportError:
        pass
cpu, wall = time.process_time(), time.perf_counter()
import flytekit
flytekit_cpu, flytekit_wall = time.process_time() - cpu, time.perf_counter() - wall
plugin_modules = sorted(m for m in sys.modules if m.startswith("flyte_private_registry"))
heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in HEAVY})
before = set(sys.modules)
cpu, wall = time.process_time(), time.perf_counter()
from flyte_private_registry import PrivateRegistry
declaration_cpu, declaration_wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps({
    "flytekit": [flytekit_cpu, flytekit_wall], "plugin": ours, "declaration": [declaration_cpu, declaration_wall],
    "modules": plugin_modules, "heavy": heavy, "declaration_modules": sorted(set(sys.modules) - before),
}))
"""


def main() -> None:
    cache_bytecode()
    warmup, runs = (1, 5) if quick() else (WARMUP, RUNS)
    probe = f"HEAVY = {HEAVY!r}\n" + _PROBE
    samples = []
    for run in range(warmup + runs):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        if run >= warmup:
            samples.append(json.loads(out))
    print(f"{runs} fresh processes after {warmup} warm-up runs; ms as min / median / max")
    print(f"{'':44s} {'CPU ms':>23s}   {'wall ms':>23s}")
    rows = {
        "import flytekit": "flytekit",
        "  of which our entry point (plugin)": "plugin",
        "then from flyte_private_registry import PrivateRegistry": "declaration",
    }
    for label, key in rows.items():
        cpu = [s[key][0] for s in samples]
        wall = [s[key][1] for s in samples]
        print(f"{label:44s} {spread(cpu)}   {spread(wall)}")
    last = samples[-1]
    print(f"  modules the plugin loads: {', '.join(last['modules'])}")
    print(f"  heavy modules present after import flytekit: {last['heavy'] or 'none'}")
    print(f"  modules `from flyte_private_registry import PrivateRegistry` adds: {len(last['declaration_modules'])}")
    ratios = (
        ("plugin / import flytekit", "plugin", "plugin entry point / import flytekit", "own goal: all pay it"),
        ("PrivateRegistry / import flytekit", "declaration", "import PrivateRegistry / import flytekit", ""),
    )
    for label, key, scenario, note in ratios:
        cpu = statistics.median(s[key][0] / s["flytekit"][0] for s in samples)
        wall = statistics.median(s[key][1] / s["flytekit"][1] for s in samples)
        verdict = "ok" if wall <= GOAL else "MISSED"
        print(f"ratio {label:34s} wall {100 * wall:5.2f} %  CPU {100 * cpu:5.2f} %  (goal <= 1 % wall: {verdict})")
        record("import_cost", scenario, 100 * wall, unit="%", goal=100 * GOAL, cpu=100 * cpu, note=note)


if __name__ == "__main__":
    main()
