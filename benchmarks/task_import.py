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
``@task`` with the goal (issue 10: <= 50 ms more, at registration and at execution), and whether
``kubernetes`` got imported; the two deltas (median of the paired per-round deltas, wall judged,
CPU beside) go to the summary table. Runs: 1 warm-up and 9 rounds; ``--quick``: 1 warm-up and 4
rounds, without the hand-written reference (it imports kubernetes: most of the run time, and it
has no goal).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _results import record
from _stats import cache_bytecode, paired_deltas, quick, spread

WARMUP = 1
ROUNDS = 9
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


def main() -> None:
    cache_bytecode()
    warmup, rounds = (1, 4) if quick() else (WARMUP, ROUNDS)
    variants = [k for k in _HEADER if not (quick() and k == "hand_tasks")]
    modes = ("registration", "execution")
    samples: dict[tuple[str, str], list[dict[str, float]]] = {(m, k): [] for m in modes for k in variants}
    with tempfile.TemporaryDirectory(prefix="task-import-") as tmp:
        directory = Path(tmp)
        write_modules(directory)
        for round_ in range(warmup + rounds):
            for mode in modes:
                order = variants if round_ % 2 else list(reversed(variants))  # no variant always first
                for module in order:
                    value = sample(directory, mode, module)
                    if round_ >= warmup:
                        samples[(mode, module)].append(value)
    print(
        textwrap.dedent(f"""\
        importing a module of {TASKS} tasks after `import flytekit`; {rounds} rounds of fresh processes
        after {warmup} warm-up rounds; ms as min / median / max""")
    )
    print(f"{'':50s} {'CPU ms':>23s}   {'wall ms':>23s}   kubernetes")
    for mode in modes:
        for module in variants:
            runs = samples[(mode, module)]
            kube = "imported" if any(r["kubernetes"] for r in runs) else "not imported"
            label = f"{mode:12s} {_LABEL[module]}"
            print(f"{label:50s} {spread([r['cpu'] for r in runs])}   {spread([r['wall'] for r in runs])}   {kube}")
        plain, ours = samples[(mode, "plain_tasks")], samples[(mode, "reg_tasks")]
        cpu = [1000 * d for d in paired_deltas([o["cpu"] for o in ours], [p["cpu"] for p in plain])]
        wall = [1000 * d for d in paired_deltas([o["wall"] for o in ours], [p["wall"] for p in plain])]
        verdict = "ok" if statistics.median(wall) <= GOAL_MS else "MISSED"
        record(
            "task_import",
            f"{mode}: @reg.task - plain @task, {TASKS} tasks",
            statistics.median(wall),
            unit="ms",
            goal=GOAL_MS,
            cpu=statistics.median(cpu),
        )
        print(
            f"{mode:12s} @reg.task - plain @task, paired per round: CPU {statistics.median(cpu):+.1f} ms "
            f"(min {min(cpu):+.1f}, max {max(cpu):+.1f}), wall {statistics.median(wall):+.1f} ms "
            f"(min {min(wall):+.1f}, max {max(wall):+.1f})  (goal <= +{GOAL_MS:.0f} ms wall: {verdict})"
        )


if __name__ == "__main__":
    main()
