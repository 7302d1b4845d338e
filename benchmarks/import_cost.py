"""How much the plugin adds to ``import flytekit`` (it is imported on every one, via the entry point).

In fresh processes, times ``import flytekit`` and, inside it, the loading of our entry point
(``EntryPoint.load`` wrapped with a timer: ``-X importtime`` cannot see it, because
``importlib.import_module`` bypasses the interpreter's import-time log). Prints the median
ratio over several runs and which heavy modules the import pulled in. Goal: under 1 %.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

RUNS = 9
HEAVY = ("boto3", "botocore", "kubernetes", "httpx", "google.auth", "yaml_rust")

_PROBE = """
import importlib, json, sys, time
ours = 0.0
def wrap(cls):
    original = cls.load
    def timed(self):
        global ours
        start = time.perf_counter()
        try:
            return original(self)
        finally:
            if self.value.startswith("flyte_private_registry"):
                ours += time.perf_counter() - start
    cls.load = timed
for name in ("importlib.metadata", "importlib_metadata"):  # flytekit uses either, by Python version
    try:
        wrap(importlib.import_module(name).EntryPoint)
    except ImportError:
        pass
start = time.perf_counter()
import flytekit
total = time.perf_counter() - start
mods = sorted(m for m in sys.modules if m.startswith("flyte_private_registry"))
heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in HEAVY})
print(json.dumps({"ours": ours, "total": total, "modules": mods, "heavy": heavy}))
"""


def main() -> None:
    probe = f"HEAVY = {HEAVY!r}\n" + _PROBE
    samples = [
        json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
        for _ in range(RUNS)
    ]
    ours = statistics.median(s["ours"] for s in samples)
    total = statistics.median(s["total"] for s in samples)
    ratio = statistics.median(s["ours"] / s["total"] for s in samples)
    print(f"import flytekit: {total * 1000:.0f} ms (median of {RUNS} fresh processes)")
    print(f"  of which the flyte-private-registry entry point: {ours * 1000:.2f} ms")
    print(f"  modules it loads: {', '.join(samples[-1]['modules'])}")
    print(f"  heavy modules present after import flytekit: {samples[-1]['heavy'] or 'none'}")
    print(f"ratio plugin/flytekit import: {ratio:.4f} ({100 * ratio:.2f} %, goal < 1 %)")


if __name__ == "__main__":
    main()
