"""Existence of 100 tags in one private registry: ours against skopeo (at its best) and flytekit's ``exist()``.

Why: "which of these tags are already pushed?" is what CI asks before building, and skopeo is
the tool people reach for. All variants run against the same real TLS + Bearer-token registry
(tests/rig) holding 50 of the 100 tags (existing and missing ones in one question):

- ours, in this process: ``PrivateRegistry(...).client().manifest_digests`` (one token, HEADs
  8 in parallel on keep-alive connections), and one HEAD at a time (what the builder does
  across a ``pyflyte`` run);
- ours, fresh process: a ``python -c`` doing the same, import included: the fair match for a
  CLI, which pays its own process start;
- ``skopeo list-tags`` once: skopeo's best shot for many tags of one repository (one process,
  one token, one ``GET /v2/<name>/tags/list``), membership checked here;
- ``skopeo inspect --raw`` per tag (one process, handshake and token each): what a per-image
  script does; without ``--quick`` only, it is 100 processes a run;
- flytekit's ``ImageSpec.exist()`` per tag, in this process, through the Docker daemon
  (docker-py -> dockerd -> registry), logged in with a docker config ``auths`` entry.

The token cache is off (``FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE=0``): skopeo keeps no tokens either,
and what a warm cache saves is first_check.py's subject. Every client verifies TLS against the
rig's CA (skopeo with ``--cert-dir``). Warm-up rounds first, then paired rounds running every
variant once, in an order rotated per round; wall and CPU time, min/median/max. CPU is this
process's (threads included) plus its children's (skopeo, the fresh Python), plus dockerd's for
flytekit's check (from ``/proc``, 10 ms ticks), since the daemon does that work. Token requests
are counted at the token server. Ratios (ours / baseline, medians of per-round ratios) go to the
summary table without a goal: issue 10 sets none for this comparison. Runs: 1 warm-up and 5
rounds; ``--quick``: 1 and 3, without ``skopeo inspect`` per tag.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _results import record  # noqa: E402
from _stats import cache_bytecode, children_cpu, paired_ratio, process_cpu, quick, spread  # noqa: E402
from rig import CertificateAuthority, DockerEngine, Registry, TokenServer, UserSpec  # noqa: E402

TAGS = 100
PRESENT = 50
PASSWORD = "bench-password"
REPOSITORY = "bench/app"
WARMUP = 1
RUNS = 5

_OURS_PROCESS = """
import sys
from flyte_private_registry import PrivateRegistry
prefix, ca_file, repository, *tags = sys.argv[1:]
registry = PrivateRegistry(prefix, username="alice", password_env="BENCH_PASSWORD", ca_file=ca_file)
with registry.client() as client:
    print(sum(digest is not None for digest in client.manifest_digests(repository, tags).values()))
"""


class Setup:
    """Token server, one token registry with ``PRESENT`` of ``TAGS`` tags pushed, a dockerd, a docker config."""

    def __init__(self, work: Path) -> None:
        from flytekit.image_spec.image_spec import ImageSpec

        self.work = work
        self.ca = CertificateAuthority(work / "ca")
        self.server = TokenServer.start(work / "token", self.ca, {"alice": UserSpec(PASSWORD, ("pull", "push"))})
        self.registry = Registry.start_token(work / "registry", self.server, self.ca)
        self.engine = DockerEngine.start(work / "docker")
        self.prefix = f"{self.registry.host}/bench"
        self.specs = [ImageSpec(name="app", registry=self.prefix, env={"I": str(i)}) for i in range(TAGS)]
        self.tags = [spec.tag for spec in self.specs]
        self.config = work / "docker-config"
        self.config.mkdir(mode=0o700)
        auth = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        (self.config / "config.json").write_text(json.dumps({"auths": {self.registry.host: {"auth": auth}}}))
        self.cert_dir = work / "certs"  # skopeo's --cert-dir: the CA as *.crt
        self.cert_dir.mkdir()
        shutil.copy(self.ca.ca_file, self.cert_dir / "ca.crt")
        self.engine.build_scratch_image("seed:1", {"/x": b"x"})
        for tag in self.tags[:PRESENT]:  # with the plain docker CLI: the library is not involved
            self.engine.docker("tag", "seed:1", f"{self.prefix}/app:{tag}")
            self.engine.docker("push", f"{self.prefix}/app:{tag}", env={"DOCKER_CONFIG": str(self.config)})

    def stop(self) -> None:
        for service in (self.engine, self.registry, self.server):
            service.stop()


def _variants(setup: Setup, full: bool) -> dict[str, Callable[[], int]]:
    """Each variant answers "how many of the 100 tags exist"; the answer must be ``PRESENT``."""
    from flyte_private_registry import PrivateRegistry

    declared = PrivateRegistry(
        setup.prefix, username="alice", password_env="BENCH_PASSWORD", ca_file=str(setup.ca.ca_file)
    )
    skopeo = shutil.which("skopeo")
    common = ["--authfile", str(setup.config / "config.json"), "--cert-dir", str(setup.cert_dir)]
    reference = f"docker://{setup.prefix}/app"

    def ours_parallel() -> int:
        with declared.client() as client:
            return sum(d is not None for d in client.manifest_digests(REPOSITORY, setup.tags).values())

    def ours_sequential() -> int:
        with declared.client() as client:
            return sum(client.manifest_digest(REPOSITORY, tag) is not None for tag in setup.tags)

    def ours_process() -> int:
        command = [sys.executable, "-c", _OURS_PROCESS, setup.prefix, str(setup.ca.ca_file), REPOSITORY, *setup.tags]
        done = subprocess.run(command, capture_output=True, text=True, cwd=setup.work, check=False)
        if done.returncode != 0:
            raise SystemExit(f"ours (fresh process) failed:\n{done.stderr[-3000:]}")
        return int(done.stdout.strip())

    def skopeo_list_tags() -> int:
        done = subprocess.run([skopeo, "list-tags", *common, reference], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"skopeo list-tags failed:\n{done.stderr[-3000:]}")
        return len(set(json.loads(done.stdout)["Tags"]) & set(setup.tags))

    def skopeo_inspect() -> int:
        found = 0
        for tag in setup.tags:
            command = [skopeo, "inspect", "--raw", *common, f"{reference}:{tag}"]
            found += subprocess.run(command, capture_output=True, check=False).returncode == 0
        return found

    def flytekit_exist() -> int:
        return sum(spec.exist() is True for spec in setup.specs)

    variants: dict[str, Callable[[], int]] = {
        "ours, 8 parallel HEADs": ours_parallel,
        "ours, one HEAD at a time": ours_sequential,
        "ours, fresh process": ours_process,
    }
    if skopeo:
        variants["skopeo list-tags (1 process)"] = skopeo_list_tags
        if full:
            variants["skopeo inspect per tag"] = skopeo_inspect
    else:
        print("skopeo not found: its rows are left out (./dev installs it)")
    variants["flytekit exist() per tag"] = flytekit_exist
    return variants


def _measure(setup: Setup, name: str, run: Callable[[], int]) -> dict[str, float]:
    setup.server.clear_requests()
    daemon = process_cpu(setup.engine.pid)
    cpu, children, wall = time.process_time(), children_cpu(), time.perf_counter()
    found = run()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu + children_cpu() - children
    daemon = process_cpu(setup.engine.pid) - daemon
    if name.startswith("flytekit"):
        cpu += daemon  # dockerd does flytekit's check
    if found != PRESENT:
        raise SystemExit(f"{name} found {found} of the {PRESENT} pushed tags")
    return {"wall": wall, "cpu": cpu, "tokens": len(setup.server.requests)}


def main() -> int:
    cache_bytecode()
    warmup, runs = (1, 3) if quick() else (WARMUP, RUNS)
    work = Path(tempfile.mkdtemp(prefix="fpr-bench-exist-"))
    setup = None
    try:
        started = time.perf_counter()
        setup = Setup(work)
        print(f"rig up, {PRESENT} of {TAGS} tags pushed with docker push, in {time.perf_counter() - started:.1f} s")
        os.environ.update(
            {
                "DOCKER_HOST": setup.engine.host,  # flytekit's exist() (docker-py)
                "DOCKER_CONFIG": str(setup.config),
                "BENCH_PASSWORD": PASSWORD,
                "FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE": "0",
            }
        )
        variants = _variants(setup, full=not quick())
        names = list(variants)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for round_ in range(warmup + runs):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:  # no variant always first
                sample = _measure(setup, name, variants[name])
                if round_ >= warmup:
                    samples[name].append(sample)
    finally:
        if setup is not None:
            setup.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"existence of {TAGS} tags ({PRESENT} present) in one TLS + token-auth registry; token cache off")
    print(f"{runs} paired rounds after {warmup} warm-up; ms as min / median / max; all found {PRESENT}")
    print(f"  {'':<30} {'wall ms':>23} {'CPU ms':>23}  tokens")
    for name, rows in samples.items():
        tokens = max(r["tokens"] for r in rows)
        print(f"  {name:<30} {spread([r['wall'] for r in rows])} {spread([r['cpu'] for r in rows])}  {tokens:>6}")

    def ratio(ours: str, base: str) -> tuple[float, float]:
        wall = paired_ratio([r["wall"] for r in samples[ours]], [r["wall"] for r in samples[base]])
        cpu = paired_ratio([r["cpu"] for r in samples[ours]], [r["cpu"] for r in samples[base]])
        return wall, cpu

    pairs = [
        ("ours, 8 parallel HEADs", "flytekit exist() per tag"),
        ("ours, one HEAD at a time", "flytekit exist() per tag"),
        ("ours, fresh process", "skopeo list-tags (1 process)"),
        ("ours, fresh process", "skopeo inspect per tag"),
    ]
    print("ratios, ours / baseline: medians of per-round ratios (lower is better for ours)")
    for ours, base in pairs:
        if base not in samples:
            continue
        wall, cpu = ratio(ours, base)
        print(f"  {ours + ' / ' + base:<62} wall {wall:6.2f}x  CPU {cpu:6.2f}x")
        record("existence_check", f"{TAGS} tags, {PRESENT} exist: {ours} / {base}", wall, cpu=cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
