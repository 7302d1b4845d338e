"""What the library adds to ``import flytekit``, and what ``from flyte_private_registry import PrivateRegistry`` costs.

In fresh processes (warm-up runs first), each run times ``import flytekit`` and, inside it, the
loading of our entry point (``EntryPoint.load`` wrapped with a timer: ``-X importtime`` cannot see
it, because ``importlib.import_module`` bypasses the interpreter's import-time log), then
``from flyte_private_registry import PrivateRegistry`` in the same process. CPU time beside wall
time, min/median/max over the runs, and the ratios (median of per-run ratios) against the goals:
the plugin and the ``PrivateRegistry`` import each under 1 % of ``import flytekit``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

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


def _ms(values: list[float]) -> str:
    return f"{1000 * min(values):7.1f} {1000 * statistics.median(values):7.1f} {1000 * max(values):7.1f}"


def main() -> None:
    probe = f"HEAVY = {HEAVY!r}\n" + _PROBE
    samples = []
    for run in range(WARMUP + RUNS):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        if run >= WARMUP:
            samples.append(json.loads(out))
    print(f"{RUNS} fresh processes after {WARMUP} warm-up runs; ms as min / median / max")
    print(f"{'':44s} {'CPU ms':>23s}   {'wall ms':>23s}")
    rows = {
        "import flytekit": "flytekit",
        "  of which our entry point (plugin)": "plugin",
        "then from flyte_private_registry import PrivateRegistry": "declaration",
    }
    for label, key in rows.items():
        cpu = [s[key][0] for s in samples]
        wall = [s[key][1] for s in samples]
        print(f"{label:44s} {_ms(cpu)}   {_ms(wall)}")
    last = samples[-1]
    print(f"  modules the plugin loads: {', '.join(last['modules'])}")
    print(f"  heavy modules present after import flytekit: {last['heavy'] or 'none'}")
    print(f"  modules `from flyte_private_registry import PrivateRegistry` adds: {len(last['declaration_modules'])}")
    for label, key in (("plugin / import flytekit", "plugin"), ("PrivateRegistry / import flytekit", "declaration")):
        cpu = statistics.median(s[key][0] / s["flytekit"][0] for s in samples)
        wall = statistics.median(s[key][1] / s["flytekit"][1] for s in samples)
        verdict = "ok" if cpu <= GOAL else "MISSED"
        print(f"ratio {label:34s} CPU {100 * cpu:5.2f} %  wall {100 * wall:5.2f} %  (goal <= 1 %: {verdict})")


if __name__ == "__main__":
    main()
