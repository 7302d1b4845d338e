"""``pyflyte package`` of 20 tasks over N existing private images: with the library, and flytekit alone.

The same workflow module (20 ``@task``s spread over N ImageSpecs under a declared registry,
``FLYTE_PRIVATE_REGISTRIES`` set in both cases) is packaged by the real ``pyflyte`` against a
real TLS + Bearer-token registry (tests/rig) where every image already exists (pushed with the
docker CLI):

- flytekit alone: the specs say ``builder="noop"``, so flytekit's NoOpBuilder answers and no
  registry is asked (the cheapest flytekit run there is);
- ours, cold cache: no builder named, so ours (priority 100) checks each image in the registry
  with a new ``$XDG_CACHE_HOME`` (a first run: ping, one token request, one HEAD per image);
- ours, warm cache: the next run within the token lifetime (one HEAD per image, nothing else).

Specs use ``source_copy_mode=NO_COPY`` so their tags can be computed here to seed the registry.
Bytecode is cached for both sides as an installed package has it (``pip install`` compiles it):
the children get a private ``PYTHONPYCACHEPREFIX`` that the warm-up fills, even where the shell
sets ``PYTHONDONTWRITEBYTECODE`` (otherwise every library module without a ``.pyc`` in the
checkout is compiled from source on every run, a cost flytekit, installed with its ``.pyc``
files, never pays). Paired runs after a warm-up, wall time and the children's CPU time, min/median/max; ratios are
medians of per-pair ratios. Goal (issue 10): <= 1.05x flytekit alone for N = 1, 3, 10; 0 builds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from first_check import PASSWORD, Rig  # noqa: E402

TASKS = 20
WARMUP = 1
RUNS = 5
GOAL = 1.05
PYFLYTE = str(Path(sys.executable).with_name("pyflyte"))


def _module(prefix: str, images: int, noop: bool) -> str:
    builder = ', builder="noop", base_image="python:3.11-slim"' if noop else ""
    lines = [
        "from flytekit import ImageSpec, task, workflow",
        "from flytekit.constants import CopyFileDetection",
        "",
        f"images = [ImageSpec(name=f'app{{i}}', registry={prefix!r}, source_copy_mode=CopyFileDetection.NO_COPY,"
        f" env={{'I': str(i)}}{builder}) for i in range({images})]",
        "",
    ]
    for index in range(TASKS):
        lines += [
            f"@task(container_image=images[{index % images}])",
            f"def t{index}(x: int) -> int:",
            f"    return x + {index}",
            "",
        ]
    lines += ["@workflow", "def wf(x: int = 1) -> int:", "    y = x"]
    lines += [f"    y = t{index}(x=y)" for index in range(TASKS)]
    lines += ["    return y", ""]
    return "\n".join(lines)


def _tags(prefix: str, images: int) -> list[str]:
    from flytekit.constants import CopyFileDetection
    from flytekit.image_spec.image_spec import ImageSpec

    return [
        ImageSpec(
            name=f"app{i}", registry=prefix, source_copy_mode=CopyFileDetection.NO_COPY, env={"I": str(i)}
        ).image_name()
        for i in range(images)
    ]


def _package(project: Path, env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [PYFLYTE, "--pkgs", "wf", "package", "--force", "--output", "out.tgz"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"pyflyte package failed in {project}:\n{output[-4000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), output


def _stats(values: list[float]) -> str:
    return f"{min(values):6.2f} {statistics.median(values):6.2f} {max(values):6.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args, _ = parser.parse_known_args()
    runs, warmup = (3, 1) if args.quick else (RUNS, WARMUP)
    work = Path(tempfile.mkdtemp(prefix="fpr-bench-package-"))
    rig = None
    table = []
    try:
        rig = Rig(work, 1)
        registry = rig.registries[0]
        prefix = f"{registry.host}/bench"
        for image in _tags(prefix, 10):
            rig.push(image)
        base_env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "FLYTE_PRIVATE_REGISTRIES": json.dumps(
                [
                    {
                        "prefix": prefix,
                        "username": "alice",
                        "password_env": "BENCH_PASSWORD",
                        "ca_file": str(rig.ca.ca_file),
                    }
                ]
            ),
            "FLYTE_PRIVATE_REGISTRY_BUILDER": "noop",
            "BENCH_PASSWORD": PASSWORD,
            "DOCKER_HOST": rig.engine.host,
            "DOCKER_CONFIG": str(rig.config),
        }
        measured = subprocess.run(
            [sys.executable, "-c", "import flyte_private_registry as m; print(m.__file__)"],
            env=base_env,
            cwd=work,  # not this checkout: ``-c`` puts the working directory first on sys.path
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"measuring {measured}")
        for count in (1, 3, 10):
            projects = {}
            for kind in ("flytekit", "ours"):
                projects[kind] = work / f"{kind}-{count}"
                projects[kind].mkdir()
                (projects[kind] / "wf.py").write_text(_module(prefix, count, noop=kind == "flytekit"))
            rows: dict[str, list[tuple[float, float, dict]]] = {"flytekit": [], "ours, cold": [], "ours, warm": []}
            for index in range(warmup + runs):
                cache = work / "cache" / f"{count}-{index}"
                env = {**base_env, "XDG_CACHE_HOME": str(cache)}
                results = {}
                for name, project in (("flytekit", "flytekit"), ("ours, cold", "ours"), ("ours, warm", "ours")):
                    rig.mark()
                    wall, cpu, output = _package(projects[project], env)
                    counts = rig.counts()
                    counts["builds"] = output.count("building...") + output.count("Using image")
                    counts["skipped"] = output.count("Skip building")
                    if name != "flytekit" and counts["builds"]:
                        raise SystemExit(f"{name} built an image that exists:\n{output[-3000:]}")
                    results[name] = (wall, cpu, counts)
                shutil.rmtree(cache, ignore_errors=True)
                if index >= warmup:
                    for name, row in results.items():
                        rows[name].append(row)
            base = rows["flytekit"]
            print(f"\npyflyte package, {TASKS} tasks over {count} existing private image(s), {runs} paired runs")
            print(f"  {'':<12} {'wall min/med/max s':>20} {'cpu min/med/max s':>20}  tokens pings HEADs builds")
            for name, data in rows.items():
                c = data[-1][2]
                print(
                    f"  {name:<12} {_stats([d[0] for d in data]):>20} {_stats([d[1] for d in data]):>20}"
                    f"  {c['tokens']:>6} {c['pings']:>5} {c['heads']:>5} "
                    f"{c['builds'] if name != 'flytekit' else 0:>6}"
                )
            for name in ("ours, cold", "ours, warm"):
                ratio = statistics.median(r[0] / b[0] for r, b in zip(rows[name], base, strict=True))
                cpu_ratio = statistics.median(r[1] / b[1] for r, b in zip(rows[name], base, strict=True))
                table.append((count, name, ratio, cpu_ratio))
    finally:
        if rig is not None:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("\nratios, ours / flytekit alone (noop builder): median of paired ratios")
    print(f"  {'images':>6}  {'run':<11} {'wall':>6} {'cpu':>6}  goal")
    for count, name, ratio, cpu_ratio in table:
        print(f"  {count:>6}  {name:<11} {ratio:>5.2f}x {cpu_ratio:>5.2f}x  <= {GOAL}x wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
