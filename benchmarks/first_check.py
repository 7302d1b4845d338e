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
requests at the token server; ``GET /v2/``, HEADs and GETs of manifests in the registries' access
logs (a tag first checked on this machine is read with a GET, whose body the platform check uses).

Scenarios (issue 10): 1, 3, 10 and 100 existing images in one registry (each image its own
repository), 10 spread over five registries, 10 missing images. Warm-up runs first, then paired
runs (flytekit, ours cold, ours warm; flytekit's place in the round rotates, ours cold always
precedes ours warm since it fills the cache); min/median/max of wall and CPU time; ratios are
medians of per-pair ratios. CPU is the probe process's own plus, for flytekit, dockerd's (read
from ``/proc``, 10 ms ticks): its check runs mostly inside the daemon, and leaving that out would
flatter it. Neither side's registry or token server CPU is counted.

Goals (issue 10), each recorded for the summary table: the first check of one existing image
<= 1.5x flytekit's (wall, cold cache); one token request per registry per run for the checks
(cold; the 100 images are 100 repositories), asking pull only ("pull-only scope for pure
checks"), so missing images add one request asking push, for all of them at once, and existing
ones none; the next run 0 token requests and 1 HEAD per existing image.
Runs: 1 warm-up and 5 paired runs (3 for 100 images); ``--quick``: 1 warm-up and 2 runs, without
the 3- and 100-image scenarios. Every run is a fresh interpreter (``import flytekit`` alone takes
1-2 s here), which is what bounds the run count.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # also when imported by pyflyte_package.py

from _results import record  # noqa: E402
from _stats import cache_bytecode, paired_ratio, process_cpu, spread, threads_cpu  # noqa: E402

PASSWORD = "bench-password"
WARMUP = 1
RUNS = 5
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
    """Token server, ``count`` token registries, a dockerd and a docker config logged in to all of them.

    With ``rtt`` (seconds) the registries and the token server are reached through
    :class:`rig.LatencyProxy` s, as if they were that far away: clients use :attr:`addresses`
    and run with :meth:`client_env` (the connect's own round trip, ``tests/rig/slow_connect``);
    pushes here go straight to the registries.
    """

    def __init__(self, work: Path, count: int, rtt: float = 0.0) -> None:
        from rig import CertificateAuthority, DockerEngine, LatencyProxy, Registry, TokenServer, UserSpec

        self.work = work
        self.rtt = rtt
        self.proxies: list[LatencyProxy] = []
        self.ca = CertificateAuthority(work / "ca")
        self.server = TokenServer.start(work / "token", self.ca, {"alice": UserSpec(PASSWORD, ("pull", "push"))})
        if rtt:
            token_port = int(self.server.url.rsplit(":", 1)[1])
            self.proxies.append(LatencyProxy.start(("127.0.0.1", token_port), rtt / 2))
            self.server.realm = f"https://{self.proxies[0].address}/token"
        self.registries = [Registry.start_token(work / f"registry{i}", self.server, self.ca) for i in range(count)]
        self.addresses = [r.host for r in self.registries]
        if rtt:
            far = [LatencyProxy.start(("127.0.0.1", r.port), rtt / 2) for r in self.registries]
            self.proxies += far
            self.addresses = [proxy.address for proxy in far]
        self.engine = DockerEngine.start(work / "docker")
        self.config = work / "docker-config"
        self.config.mkdir(mode=0o700)
        auth = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        auths = {r.host: {"auth": auth} for r in self.registries}
        (self.config / "config.json").write_text(json.dumps({"auths": auths}))
        self.engine.build_scratch_image("seed:1", {"/x": b"x"})
        self.offsets: list[int] = []
        self.registry_cpu = 0.0
        self.probe = work / "probe.py"  # a file: flytekit reads a task's source
        self.probe.write_text(_PROBE)

    def push(self, image: str) -> None:
        """Push ``image`` as an image of its own: one label makes its config, and so its digest, unique.

        Different ImageSpecs build different images. Tags of one shared image would let the
        platform check (two GETs per digest, cached by digest) run once for all of them.
        """
        dockerfile = f"FROM seed:1\nLABEL org.flyte-private-registry.bench={json.dumps(image)}\n"
        self.engine.docker("build", "--tag", image, "-", input=dockerfile, env={"DOCKER_BUILDKIT": "0"})
        self.engine.docker("push", image, env={"DOCKER_CONFIG": str(self.config)})

    def mark(self) -> None:
        self.server.clear_requests()
        self.offsets = [r.log_path.stat().st_size for r in self.registries]
        self.registry_cpu = self._registry_cpu()

    def counts(self) -> dict[str, float]:
        import time

        time.sleep(0.2)
        heads = gets = pings = 0
        for registry, offset in zip(self.registries, self.offsets, strict=True):
            with registry.log_path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
            for match in _ACCESS.finditer(text):
                heads += match["method"] == "HEAD" and "/manifests/" in match["path"]
                gets += match["method"] == "GET" and "/manifests/" in match["path"]
                pings += match["method"] == "GET" and match["path"] == "/v2/"
        registry_ms = (self._registry_cpu() - self.registry_cpu) * 1000
        requests = list(self.server.requests)
        push = sum(any("push" in scope.rpartition(":")[2].split(",") for scope in r.scopes) for r in requests)
        return {
            "tokens": len(requests),
            "push_tokens": push,
            "heads": heads,
            "gets": gets,
            "pings": pings,
            "registry_ms": registry_ms,
        }

    def _registry_cpu(self) -> float:
        """CPU seconds the registries have used so far: :meth:`counts` reports the change since :meth:`mark`."""
        return sum(threads_cpu(r.proc.pid) for r in self.registries)

    def client_env(self) -> dict[str, str]:
        """What a client process needs to see the rig as far away as ``rtt`` says (nothing when near)."""
        if not self.rtt:
            return {}
        slow = str(ROOT / "tests" / "rig" / "slow_connect")
        ports = ",".join(str(proxy.port) for proxy in self.proxies)
        path = os.pathsep.join(p for p in (slow, os.environ.get("PYTHONPATH", "")) if p)
        return {"PYTHONPATH": path, "RIG_CONNECT_DELAY": f"{ports}@{self.rtt}"}

    def direct(self, image: str) -> str:
        """``image`` as pushed here: under the registry itself rather than its far address."""
        for address, registry in zip(self.addresses, self.registries, strict=True):
            if image.startswith(address + "/"):
                return registry.host + image[len(address) :]
        return image

    def stop(self) -> None:
        for service in (self.engine, *self.registries, self.server, *self.proxies):
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
    daemon = process_cpu(rig.engine.pid)
    done = subprocess.run(
        [sys.executable, str(rig.probe), mode, str(rig.ca.ca_file), json.dumps(images)],
        env=env,
        capture_output=True,
        text=True,
        cwd=rig.work,
        timeout=600,
    )
    daemon = process_cpu(rig.engine.pid) - daemon
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"probe {mode} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    result = {**json.loads(line[7:]), **rig.counts(), "dockerd": daemon}
    if mode == "flytekit":
        result["cpu"] += daemon  # the daemon does flytekit's check; ours never asks it
    return result


NAMES = ("flytekit", "ours, cold cache", "ours, warm cache")


def scenario(rig: Rig, label: str, images: list[tuple[str, str]], runs: int, warmup: int) -> dict:
    """Paired fresh-process runs: flytekit, ours with a cold cache, ours with the warm cache."""
    results: dict[str, list[dict]] = {name: [] for name in NAMES}
    for index in range(warmup + runs):
        cache = rig.work / "cache" / f"{label}-{index}".replace(" ", "_").replace(",", "")
        order = ["ours, cold cache", "ours, warm cache"]
        order.insert(index % 3, "flytekit")  # flytekit first, between, last: no side always first
        rows = {}
        for name in order:
            rows[name] = _probe(rig, "flytekit" if name == "flytekit" else "ours", images, cache)
        shutil.rmtree(cache, ignore_errors=True)
        if index >= warmup:
            for name in NAMES:
                results[name].append(rows[name])
    registries = len({prefix for prefix, _ in images})
    print(f"\n{label}: {len(images)} image(s) in {registries} registr{'y' if registries == 1 else 'ies'}, ", end="")
    print(f"{runs} paired runs after {warmup} warm-up; ms as min / median / max; counts: max over the runs")
    counts = {
        name: {key: max(r[key] for r in rows) for key in ("tokens", "push_tokens", "heads", "gets", "pings")}
        for name, rows in results.items()
    }
    print(f"  {'':<18} {'wall ms':>23} {'CPU ms':>23} {'of which dockerd':>23}  found  tokens  pings  HEADs  GETs")
    for name, rows in results.items():
        c = counts[name]
        print(
            f"  {name:<18} {spread([r['wall'] for r in rows])} {spread([r['cpu'] for r in rows])}"
            f" {spread([r['dockerd'] for r in rows])}  {min(r['found'] for r in rows):>5}"
            f"  {c['tokens']:>6}  {c['pings']:>5}  {c['heads']:>5}  {c['gets']:>4}"
        )
    base = results["flytekit"]
    ratios = {
        name: (
            paired_ratio([r["wall"] for r in rows], [b["wall"] for b in base]),
            paired_ratio([r["cpu"] for r in rows], [b["cpu"] for b in base]),
        )
        for name, rows in results.items()
        if name != "flytekit"
    }
    return {
        "label": label,
        "images": len(images),
        "registries": registries,
        "missing": "missing" in label,
        "ratios": ratios,
        "counts": counts,
    }


def _record(row: dict) -> None:
    """The scenario's ratios and request counts, with issue 10's goals where they apply."""
    label, images, registries = row["label"], row["images"], row["registries"]
    first = label.startswith("1 existing")
    for name, when in (("ours, cold cache", "cold (first run)"), ("ours, warm cache", "warm (next run)")):
        wall, cpu = row["ratios"][name]
        goal = GOAL_FIRST_CHECK if first and name == "ours, cold cache" else None
        record("first_check", f"{label}: ours/flytekit exist(), {when}", wall, goal=goal, cpu=cpu)
    cold, warm = row["counts"]["ours, cold cache"], row["counts"]["ours, warm cache"]
    checks = (cold["tokens"] - cold["push_tokens"]) / registries
    record("first_check", f"{label}: token requests for the checks per registry, cold", checks, unit="calls", goal=1)
    # Pure checks ask for pull only (issue 10); a missing image then needs push rights, asked once
    # for every repository of the registry: 10 missing images are one such request, not ten.
    pushes = cold["push_tokens"] / registries
    record(
        "first_check",
        f"{label}: token requests asking push per registry, cold",
        pushes,
        unit="calls",
        goal=1 if row["missing"] else 0,
    )
    record("first_check", f"{label}: token requests, warm", warm["tokens"], unit="calls", goal=0)
    if not row["missing"]:
        record("first_check", f"{label}: HEADs per image, warm", warm["heads"] / images, unit="calls", goal=1)


def main() -> int:
    cache_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, no 3- and 100-image scenarios")
    args, _ = parser.parse_known_args()
    runs, warmup = (2, 1) if args.quick else (RUNS, WARMUP)
    counts = (10,) if args.quick else (3, 10, 100)
    work = Path(tempfile.mkdtemp(prefix="fpr-bench-first-"))
    rig = None
    summary = []
    try:
        rig = Rig(work, 5)
        prefixes = [f"{r.host}/bench" for r in rig.registries]
        one = [(prefixes[0], "app0")]
        many = {n: [(prefixes[0], f"app{i}") for i in range(n)] for n in counts}
        spread_ = [(prefixes[i % 5], f"app{i}") for i in range(10)]
        started = time.perf_counter()
        seeded = sorted(set(_tags(many[max(counts)]) + _tags(spread_)))
        for image in seeded:  # every listed image exists ...
            rig.push(image)
        print(f"seeded {len(seeded)} images with docker push in {time.perf_counter() - started:.1f} s")
        missing = [(prefixes[0], f"missing{i}") for i in range(10)]  # ... and these never do
        plan = [("1 existing, 1 registry", one)]
        plan += [(f"{n} existing, 1 registry", many[n]) for n in counts]
        plan += [("10 existing, 5 registries", spread_), ("10 missing, 1 registry", missing)]
        for label, images in plan:
            summary.append(scenario(rig, label, images, runs if len(images) < 100 else min(3, runs), warmup))
    finally:
        if rig is not None:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("\nratios, ours / flytekit ImageSpec.exist(): medians of paired ratios, wall (CPU)")
    print(f"  {'scenario':<28} {'cold cache':>16} {'warm cache':>16}  goal")
    for row in summary:
        goal = f"<= {GOAL_FIRST_CHECK}x wall (first check)" if row["label"].startswith("1 existing") else ""
        cells = [f"{w:.2f}x ({c:.2f}x)" for w, c in (row["ratios"][n] for n in NAMES[1:])]
        print(f"  {row['label']:<28} {cells[0]:>16} {cells[1]:>16}  {goal}")
        _record(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
