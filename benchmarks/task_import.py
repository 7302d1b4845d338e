"""What ``@reg.task`` adds to importing a workflow module: at registration and in the task container.

Three generated modules of 20 tasks on one private image: plain flytekit ``@task``; ``@reg.task``
(the registry declared in the module); and, for reference, ``@task`` with a hand-written
``pod_template`` carrying the same ``imagePullSecrets`` (what secrets cost when kubernetes' models
are built at import, as ``@reg.task`` did before). Each is timed in fresh processes, in rounds
that run every variant back to back (warm-up rounds first), after ``import flytekit``:

- registration: ``importlib.import_module`` of the module, as ``pyflyte`` loads it;
- execution: ``default_task_resolver.load_task(...)``, what ``pyflyte-execute`` does in the
  container before running the task (import only).

Prints CPU beside wall time (min / median / max), the paired per-round delta against plain
``@task`` with the goal (<= 50 ms), and whether ``kubernetes`` got imported.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

WARMUP = 2
ROUNDS = 11
TASKS = 20
GOAL_MS = 50.0
IMAGE = "harbor.example.com/ml/trainer:v1"

_HEADER = {
    "plain_tasks": "from flytekit import task\n",
    "reg_tasks": (
        "from flyte_private_registry import PrivateRegistry\n"
        "reg = PrivateRegistry(\n"
        "    'harbor.example.com/ml', username='u', password_env='BENCH_TOKEN', pull_secret='ml-pull'\n"
        ")\n"
    ),
    "hand_tasks": (
        "from flytekit import PodTemplate, task\n"
        "from kubernetes.client import V1LocalObjectReference, V1PodSpec\n"
        "pod = PodTemplate(\n"
        "    pod_spec=V1PodSpec(containers=[], image_pull_secrets=[V1LocalObjectReference(name='ml-pull')])\n"
        ")\n"
    ),
}
_DECORATOR = {
    "plain_tasks": f"@task(container_image={IMAGE!r})",
    "reg_tasks": f"@reg.task(container_image={IMAGE!r})",
    "hand_tasks": f"@task(container_image={IMAGE!r}, pod_template=pod)",
}
_LABEL = {
    "plain_tasks": "plain @task",
    "reg_tasks": "@reg.task",
    "hand_tasks": "@task + hand-written pod_template (ref.)",
}

_PROBE = """
import importlib, json, sys, time
sys.path.insert(0, sys.argv[1])
mode, module = sys.argv[2], sys.argv[3]
import flytekit  # both sides pay it (and so our entry point); not what is compared here
cpu, wall = time.process_time(), time.perf_counter()
if mode == "registration":
    importlib.import_module(module)
else:
    from flytekit.core.python_auto_container import default_task_resolver
    default_task_resolver.load_task(["task-module", module, "task-name", "t0"])
print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                  "kubernetes": "kubernetes" in sys.modules}))
"""


def write_modules(directory: Path) -> None:
    for module, header in _HEADER.items():
        body = "".join(
            f"\n\n{_DECORATOR[module]}\ndef t{i}(x: int) -> int:\n    return x + {i}\n" for i in range(TASKS)
        )
        (directory / f"{module}.py").write_text(header + body)


def sample(directory: Path, mode: str, module: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(directory), mode, module], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{module} ({mode}) failed:\n{result.stderr}")
    return json.loads(result.stdout)


def _ms(values: list[float]) -> str:
    return f"{1000 * min(values):7.1f} {1000 * statistics.median(values):7.1f} {1000 * max(values):7.1f}"


def main() -> None:
    modes = ("registration", "execution")
    samples: dict[tuple[str, str], list[dict[str, float]]] = {(m, k): [] for m in modes for k in _HEADER}
    with tempfile.TemporaryDirectory(prefix="task-import-") as tmp:
        directory = Path(tmp)
        write_modules(directory)
        for round_ in range(WARMUP + ROUNDS):
            for mode in modes:
                order = list(_HEADER) if round_ % 2 else list(reversed(_HEADER))  # no variant always first
                for module in order:
                    value = sample(directory, mode, module)
                    if round_ >= WARMUP:
                        samples[(mode, module)].append(value)
    print(
        textwrap.dedent(f"""\
        importing a module of {TASKS} tasks after `import flytekit`; {ROUNDS} rounds of fresh processes
        after {WARMUP} warm-up rounds; ms as min / median / max""")
    )
    print(f"{'':50s} {'CPU ms':>23s}   {'wall ms':>23s}   kubernetes")
    for mode in modes:
        for module in _HEADER:
            runs = samples[(mode, module)]
            kube = "imported" if any(r["kubernetes"] for r in runs) else "not imported"
            label = f"{mode:12s} {_LABEL[module]}"
            print(f"{label:50s} {_ms([r['cpu'] for r in runs])}   {_ms([r['wall'] for r in runs])}   {kube}")
        plain, ours = samples[(mode, "plain_tasks")], samples[(mode, "reg_tasks")]
        cpu = [1000 * (o["cpu"] - p["cpu"]) for o, p in zip(ours, plain, strict=True)]
        wall = [1000 * (o["wall"] - p["wall"]) for o, p in zip(ours, plain, strict=True)]
        verdict = "ok" if statistics.median(cpu) <= GOAL_MS and statistics.median(wall) <= GOAL_MS else "MISSED"
        print(
            f"{mode:12s} @reg.task - plain @task, paired per round: CPU {statistics.median(cpu):+.1f} ms "
            f"(min {min(cpu):+.1f}, max {max(cpu):+.1f}), wall {statistics.median(wall):+.1f} ms "
            f"(min {min(wall):+.1f}, max {max(wall):+.1f})  (goal <= +{GOAL_MS:.0f} ms: {verdict})"
        )


if __name__ == "__main__":
    main()
