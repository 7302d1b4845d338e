"""Existence checks in a fresh process, as ``pyflyte`` makes them: ours against flytekit's ``ImageSpec.exist()``.

Everything is real and local: a TLS + Bearer-token registry (or five of them, sharing one token
server) from tests/rig, a private dockerd for flytekit's check (docker-py -> dockerd ->
registry, logged in through a docker config ``auths`` entry), images pushed with the docker CLI.

Every run is a new Python process that has already imported flytekit and built its ImageSpecs
(one ``@task`` per image, as a workflow module would); the timer covers what the check itself
costs there. flytekit: ``spec.exist()`` per image. Ours: ``from flyte_private_registry import
PrivateRegistry``, the declaration, and the builder's ``should_build`` per image (what
``ImageBuildEngine.build`` calls; for a missing image that includes proving push rights), with
the token cache cold (a new ``$XDG_CACHE_HOME``: a first ``pyflyte`` run) and warm (the same
directory again: the next run within the token lifetime). Requests are counted server-side: token
requests at the token server, HEADs and ``GET /v2/`` in the registries' access logs.

Warm-up runs first, then paired runs (flytekit, ours cold, ours warm, interleaved); min/median/max
of wall and CPU time; ratios are medians of per-pair ratios. Goals (issue 10): the first check of
one existing image <= 1.5x flytekit's; one token request per registry per run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PASSWORD = "bench-password"
WARMUP = 2
RUNS = 7
GOAL_FIRST_CHECK = 1.5

_PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    import flytekit
    from flytekit import task
    from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec

    mode, ca_file, images = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    specs = [ImageSpec(name=name, registry=prefix, env={"I": str(i)}) for i, (prefix, name) in enumerate(images)]
    for i, spec in enumerate(specs):  # a workflow module's tasks: flytekit knows every ImageSpec
        def fn(x: int) -> int:
            return x
        fn.__name__ = fn.__qualname__ = f"t{i}"
        task(container_image=spec)(fn)
    found = 0
    cpu, wall = time.process_time(), time.perf_counter()
    if mode == "flytekit":
        found = sum(spec.exist() is True for spec in specs)
        check = (time.process_time() - cpu, time.perf_counter() - wall)
    else:
        from flyte_private_registry import PrivateRegistry
        for prefix in dict.fromkeys(p for p, _ in images):
            PrivateRegistry(prefix, username="alice", password_env="BENCH_PASSWORD", ca_file=ca_file)
        builder = ImageBuildEngine.get_registry()["private-registry"][0]
        found = sum(not builder.should_build(spec) for spec in specs)
        check = (time.process_time() - cpu, time.perf_counter() - wall)
    print("RESULT " + json.dumps({"cpu": check[0], "wall": check[1], "found": found}))
    """
)
_ACCESS = re.compile(r'"(?P<method>HEAD|GET) (?P<path>/v2/\S*) HTTP/1\.1"')


def _tags(images: list[tuple[str, str]]) -> list[str]:
    from flytekit.image_spec.image_spec import ImageSpec

    return [
        ImageSpec(name=name, registry=prefix, env={"I": str(i)}).image_name() for i, (prefix, name) in enumerate(images)
    ]


class Rig:
    """Token server, ``count`` token registries, a dockerd and a docker config logged in to all of them."""

    def __init__(self, work: Path, count: int) -> None:
        from rig import CertificateAuthority, DockerEngine, Registry, TokenServer, UserSpec

        self.work = work
        self.ca = CertificateAuthority(work / "ca")
        self.server = TokenServer.start(work / "token", self.ca, {"alice": UserSpec(PASSWORD, ("pull", "push"))})
        self.registries = [Registry.start_token(work / f"registry{i}", self.server, self.ca) for i in range(count)]
        self.engine = DockerEngine.start(work / "docker")
        self.config = work / "docker-config"
        self.config.mkdir(mode=0o700)
        auth = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        auths = {r.host: {"auth": auth} for r in self.registries}
        (self.config / "config.json").write_text(json.dumps({"auths": auths}))
        self.engine.build_scratch_image("seed:1", {"/x": b"x"})
        self.offsets: list[int] = []
        self.probe = work / "probe.py"  # a file: flytekit reads a task's source
        self.probe.write_text(_PROBE)

    def push(self, image: str) -> None:
        self.engine.docker("tag", "seed:1", image)
        self.engine.docker("push", image, env={"DOCKER_CONFIG": str(self.config)})

    def mark(self) -> None:
        self.server.clear_requests()
        self.offsets = [r.log_path.stat().st_size for r in self.registries]

    def counts(self) -> dict[str, int]:
        import time

        time.sleep(0.2)
        heads = pings = 0
        for registry, offset in zip(self.registries, self.offsets, strict=True):
            with registry.log_path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
            for match in _ACCESS.finditer(text):
                heads += match["method"] == "HEAD" and "/manifests/" in match["path"]
                pings += match["method"] == "GET" and match["path"] == "/v2/"
        return {"tokens": len(self.server.requests), "heads": heads, "pings": pings}

    def stop(self) -> None:
        for service in (self.engine, *self.registries, self.server):
            service.stop()


def _probe(rig: Rig, mode: str, images: list[tuple[str, str]], cache: Path) -> dict:
    env = {
        **os.environ,
        "DOCKER_HOST": rig.engine.host,
        "DOCKER_CONFIG": str(rig.config),
        "BENCH_PASSWORD": PASSWORD,
        "XDG_CACHE_HOME": str(cache),
    }
    rig.mark()
    done = subprocess.run(
        [sys.executable, str(rig.probe), mode, str(rig.ca.ca_file), json.dumps(images)],
        env=env,
        capture_output=True,
        text=True,
        cwd=rig.work,
        timeout=600,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"probe {mode} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return {**json.loads(line[7:]), **rig.counts()}


def _stats(values: list[float]) -> str:
    return f"{1000 * min(values):7.1f} {1000 * statistics.median(values):7.1f} {1000 * max(values):7.1f}"


def scenario(rig: Rig, label: str, images: list[tuple[str, str]], runs: int, warmup: int) -> dict:
    """Paired fresh-process runs: flytekit, ours with a cold cache, ours with the warm cache."""
    results: dict[str, list[dict]] = {"flytekit": [], "ours, cold cache": [], "ours, warm cache": []}
    for index in range(warmup + runs):
        cache = rig.work / "cache" / f"{label}-{index}".replace(" ", "_").replace(",", "")
        rows = {
            "flytekit": _probe(rig, "flytekit", images, cache),
            "ours, cold cache": _probe(rig, "ours", images, cache),
            "ours, warm cache": _probe(rig, "ours", images, cache),
        }
        shutil.rmtree(cache, ignore_errors=True)
        if index >= warmup:
            for name, row in rows.items():
                results[name].append(row)
    print(f"\n{label}: {len(images)} image(s), {runs} paired runs after {warmup} warm-up")
    print(f"  {'':<18} {'wall min/med/max ms':>24} {'cpu min/med/max ms':>24}  found  tokens  pings  HEADs  (per run)")
    for name, rows in results.items():
        print(
            f"  {name:<18} {_stats([r['wall'] for r in rows]):>24} {_stats([r['cpu'] for r in rows]):>24}"
            f"  {rows[-1]['found']:>5}  {rows[-1]['tokens']:>6}  {rows[-1]['pings']:>5}  {rows[-1]['heads']:>5}"
        )
    base = results["flytekit"]
    ratios = {
        name: statistics.median(r["wall"] / b["wall"] for r, b in zip(rows, base, strict=True))
        for name, rows in results.items()
        if name != "flytekit"
    }
    return {"label": label, "images": len(images), "ratios": ratios, "results": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and scenarios")
    args, _ = parser.parse_known_args()
    runs, warmup = (3, 1) if args.quick else (RUNS, WARMUP)
    work = Path(tempfile.mkdtemp(prefix="fpr-bench-first-"))
    rig = None
    summary = []
    try:
        rig = Rig(work, 5)
        prefixes = [f"{r.host}/bench" for r in rig.registries]
        one = [(prefixes[0], "app0")]
        many = {n: [(prefixes[0], f"app{i}") for i in range(n)] for n in (3, 10, 100)}
        spread = [(prefixes[i % 5], f"app{i}") for i in range(10)]
        for image in [*_tags(many[100]), *_tags(spread)]:  # every listed image exists ...
            rig.push(image)
        missing = [(prefixes[0], f"missing{i}") for i in range(10)]  # ... and these never do
        plan = [("1 existing image", one)]
        plan += [(f"{n} existing, 1 registry", many[n]) for n in (3, 10) + (() if args.quick else (100,))]
        plan += [("10 existing, 5 registries", spread), ("10 missing, 1 registry", missing)]
        for label, images in plan:
            summary.append(scenario(rig, label, images, runs if len(images) < 100 else max(3, runs // 2), warmup))
    finally:
        if rig is not None:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("\nratios, ours / flytekit ImageSpec.exist() (median of paired wall-time ratios)")
    print(f"  {'scenario':<28} {'cold cache':>10} {'warm cache':>10}  goal")
    for row in summary:
        goal = f"<= {GOAL_FIRST_CHECK}x (first check)" if row["label"] == "1 existing image" else ""
        ratios = row["ratios"]
        print(f"  {row['label']:<28} {ratios['ours, cold cache']:>9.2f}x {ratios['ours, warm cache']:>9.2f}x  {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
