"""ECR ``GetAuthorizationToken`` calls and build time: ours against the per-build ``docker login`` of CI scripts.

Why: the issue asks for one token request per registry per run, and for every baseline to be
measured, not modelled. Everything runs for real except AWS itself: moto in server mode answers
ECR's control plane (started here), a rig registry answers as
``123456789012.dkr.ecr.us-east-1.amazonaws.com`` (TLS + Basic, user ``AWS`` with moto's token,
mapped in the run's private /etc/hosts: the script re-runs itself under ``tests/rig/isolate.py``,
so neither the machine's /etc/hosts nor ``~/.docker`` is touched), and each build is
``ImageBuildEngine.build(ImageSpec(...))`` with the ``docker-cli`` builder against a private
dockerd (``docker build`` + ``docker push``). Calls are counted from moto's request recorder, so
calls from every process count.

Scenarios (``BUILDS`` = 50 builds each, distinct tags):

1. paired, one build of each side in turn (ours first on even builds, the baseline first on odd
   ones), each side a long-lived worker process doing all its builds:
   - ours: ``PrivateRegistry.ecr(...)`` declared once; the library fetches the token, logs in
     through a temporary docker config, checks, builds, pushes, verifies;
   - per-build login, what many CI scripts do before every build:
     ``aws ecr get-login-password | docker login --username AWS --password-stdin <host>``. The
     AWS CLI is not installed here; its stand-in is a fresh ``python -c`` calling boto3's
     ``ecr.get_authorization_token()`` (the same API call the CLI makes, the CLI being a Python
     program on botocore too) and printing the password, piped into a real ``docker login``
     against the rig registry with a private ``DOCKER_CONFIG``; then the same build with
     flytekit's own path (``ImageSpec(builder="docker-cli")``: flytekit's ``exist()`` through
     dockerd, then ``docker build`` + ``docker push`` with the logged-in config; no library
     wrapper);
2. ours in ``PROCESSES`` processes started together, sharing the token cache file;
3. the same without the cache file (each process keeps its token in memory only).

Every step must push exactly one manifest (counted in the registry's access log), so a side
that skipped a build cannot look fast. moto stamps every token ``expiresAt = 2015-01-01``; ours
therefore gets a clock set 12 hours before that, as a freshly issued real token would be.
Per-build wall and CPU time (the worker's own CPU plus its children's: docker CLI, the token
process; dockerd's is not counted: the build and push, the same for both, and for the baseline
also flytekit's ``exist()``), min/median/max over the builds after the first ``WARMUP`` of each
worker; the ratio is the median of per-build ratios. Goal (issue 10): one token request in
scenarios 1 (ours) and 2. ``--quick``: 4 builds, 2 processes, 1 warm-up.
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
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from _results import record  # noqa: E402
from _stats import cache_bytecode, children_cpu, own_cpu, paired_ratio, spread  # noqa: E402

ACCOUNT = "123456789012"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
PREFIX = f"{ECR_HOST}/bench"
ECR_IP = "127.0.0.61"
BUILDS = 50
PROCESSES = 5
WARMUP = 2
#: Twelve hours before moto's fixed expiresAt (2015-01-01): "now" for a token just issued.
NOW = datetime(2015, 1, 1, tzinfo=timezone.utc) - timedelta(hours=12)
#: ``aws ecr get-login-password``, as a fresh Python process making the same boto3 call.
TOKEN_PROCESS = (
    "import base64, boto3\n"
    "data = boto3.client('ecr').get_authorization_token()['authorizationData'][0]\n"
    "print(base64.b64decode(data['authorizationToken']).decode().partition(':')[2])\n"
)
_MANIFEST_PUT = re.compile(r'"PUT /v2/\S+/manifests/\S+ HTTP/1\.1" 201')


# ---------------------------------------------------------------------------------------- workers
def _spec(index: int, baseline: bool) -> Any:
    from flytekit.image_spec.image_spec import ImageSpec

    extra = {"builder": "docker-cli"} if baseline else {}
    return ImageSpec(name="app", registry=PREFIX, copy=["payload.txt"], env={"BUILD": str(index)}, **extra)


def _declare(ca_file: str, token_cache: bool) -> None:
    from flyte_private_registry import PrivateRegistry

    PrivateRegistry.ecr(PREFIX, ca_file=ca_file, clock=lambda: NOW, token_cache=token_cache)


def _login() -> None:
    """``aws ecr get-login-password | docker login --username AWS --password-stdin HOST``, for real."""
    token = subprocess.Popen([sys.executable, "-c", TOKEN_PROCESS], stdout=subprocess.PIPE)
    login = subprocess.run(
        ["docker", "login", "--username", "AWS", "--password-stdin", ECR_HOST], stdin=token.stdout, check=False
    )
    assert token.stdout is not None
    token.stdout.close()
    if token.wait() != 0 or login.returncode != 0:
        raise SystemExit(f"token process exited {token.returncode}, docker login {login.returncode}")


def _serve(args: argparse.Namespace, channel: IO[str]) -> int:
    """Paired worker: one build per index read from stdin, its timings written to ``channel``."""
    from flytekit.image_spec.image_spec import ImageBuildEngine

    baseline = args.mode == "login"
    if not baseline:
        _declare(args.ca_file, token_cache=True)
    for line in sys.stdin:
        index = int(line)
        wall, cpu = time.perf_counter(), own_cpu() + children_cpu()
        if baseline:
            _login()
        login = time.perf_counter() - wall
        ImageBuildEngine.build(_spec(index, baseline))
        wall, cpu = time.perf_counter() - wall, own_cpu() + children_cpu() - cpu
        channel.write(json.dumps({"wall": wall, "cpu": cpu, "login": login}) + "\n")
        channel.flush()
    return 0


def _batch(args: argparse.Namespace) -> int:
    """Scenarios 2 and 3: ``count`` builds in this process, then exit."""
    from flytekit.image_spec.image_spec import ImageBuildEngine

    _declare(args.ca_file, token_cache=not args.no_cache)
    for index in range(args.first, args.first + args.count):
        ImageBuildEngine.build(_spec(index, baseline=False))
    return 0


def _worker_main(args: argparse.Namespace) -> int:
    """Keep the build chatter (flytekit, docker) in the log on stdout/stderr; answer on a saved fd."""
    channel = os.fdopen(os.dup(1), "w")
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    return _serve(args, channel) if args.mode in ("ours", "login") else _batch(args)


# ---------------------------------------------------------------------------------------- driver
class Worker:
    """A long-lived ``--worker`` process that builds one image per request (scenario 1)."""

    def __init__(self, mode: str, workdir: Path, ca_file: Path, env: dict[str, str]) -> None:
        self.log = workdir / f"worker-{mode}.log"
        command = [sys.executable, __file__, "--worker", mode, "--ca-file", str(ca_file), "--log", str(self.log)]
        self.proc = subprocess.Popen(
            command, cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def build(self, index: int) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{index}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise SystemExit(f"worker exited ({self.proc.wait()}), see its log:\n{self.log.read_text()[-3000:]}")
        return json.loads(answer)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _run_processes(
    workdir: Path, ca_file: Path, *, builds: int, processes: int, offset: int, token_cache: bool, env: dict[str, str]
) -> tuple[float, float]:
    """Scenarios 2 and 3: ``processes`` workers started together; wall and their CPU (children included)."""
    per_process = builds // processes
    started, cpu = time.perf_counter(), children_cpu()
    procs = []
    for index in range(processes):
        log = workdir / f"worker-{offset + index}.log"
        command = [sys.executable, __file__, "--worker", "batch", "--ca-file", str(ca_file), "--log", str(log)]
        command += ["--first", str(offset + index * per_process), "--count", str(per_process)]
        if not token_cache:
            command.append("--no-cache")
        procs.append((subprocess.Popen(command, cwd=workdir, env=env), log))
    for proc, log in procs:
        if proc.wait() != 0:
            raise SystemExit(f"worker failed ({proc.returncode}), see {log}:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - started, children_cpu() - cpu


class Pushes:
    """Manifest PUTs the registry answered 201, from its access log, since the last :meth:`count`."""

    def __init__(self, log_path: Path) -> None:
        self.path = log_path
        self.offset = log_path.stat().st_size

    def count(self) -> int:
        time.sleep(0.1)  # the registry writes its access log line after answering
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read().decode("utf-8", "replace")
        self.offset += len(text.encode("utf-8", "replace"))
        return len(_MANIFEST_PUT.findall(text))


def main(quick: bool) -> int:
    from rig.isolate import ensure_isolated

    ensure_isolated()  # the ECR name goes into a private /etc/hosts, never the machine's
    cache_bytecode()
    builds, processes, warmup = (4, 2, 1) if quick else (BUILDS, PROCESSES, WARMUP)

    from provider_rig import wait_until_daemon_resolves
    from rig import CertificateAuthority, DockerEngine, Registry, hosts_entries
    from rig.moto_server import MotoServer

    work = Path(tempfile.mkdtemp(prefix="fpr-bench-ecr-"))
    moto = engine = registry = None
    workers: list[Worker] = []
    try:
        moto = MotoServer.start(work / "moto")
        ca = CertificateAuthority(work / "ca")
        engine = DockerEngine.start(work / "docker")
        project = work / "project"
        project.mkdir()
        (project / "payload.txt").write_text("payload\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(moto.env())
        env.update(
            {
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(work / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-aws-credentials"),
                "DOCKER_HOST": engine.host,
                "DOCKER_CONFIG": str(work / "user-docker-config"),
                "FLYTE_PRIVATE_REGISTRY_BUILDER": "docker-cli",
                "XDG_CACHE_HOME": str(work / "cache-paired"),
            }
        )
        token = base64.b64decode(_moto_token(moto)).decode().partition(":")[2]
        with hosts_entries({ECR_HOST: ECR_IP}):
            registry = Registry.start_basic(
                work / "registry", {"AWS": token}, host=ECR_IP, port=443, hostnames=[ECR_HOST], ca=ca
            )
            wait_until_daemon_resolves(engine, ECR_HOST)
            pushes = Pushes(registry.log_path)

            # 1. paired: ours and the per-build login, one build each in turn
            moto.reset()
            sides = {
                "ours": Worker("ours", project, ca.ca_file, env),
                "login": Worker("login", project, ca.ca_file, {**env, "DOCKER_CONFIG": str(work / "ci-docker-config")}),
            }
            workers = list(sides.values())
            steps: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
            calls = dict.fromkeys(sides, 0)
            started = time.perf_counter()
            for index in range(builds):
                order = list(sides) if index % 2 == 0 else list(reversed(sides))
                for name in order:
                    before = moto.calls("GetAuthorizationToken")
                    steps[name].append(sides[name].build(index + (0 if name == "ours" else 5000)))
                    calls[name] += moto.calls("GetAuthorizationToken") - before
                    if (pushed := pushes.count()) != 1:
                        raise SystemExit(f"{name} build {index} pushed {pushed} manifests, not 1")
            paired_seconds = time.perf_counter() - started
            for worker in workers:
                worker.close()
            workers = []

            # 2. several processes started together, sharing the cache file
            moto.reset()
            shared = _run_processes(
                project,
                ca.ca_file,
                builds=builds,
                processes=processes,
                offset=1000,
                token_cache=True,
                env={**env, "XDG_CACHE_HOME": str(work / "cache-shared")},
            )
            shared_calls = moto.calls("GetAuthorizationToken")
            # 3. the same without the cache file
            moto.reset()
            separate = _run_processes(
                project,
                ca.ca_file,
                builds=builds,
                processes=processes,
                offset=2000,
                token_cache=False,
                env={**env, "XDG_CACHE_HOME": str(work / "cache-none")},
            )
            separate_calls = moto.calls("GetAuthorizationToken")
            if (pushed := pushes.count()) != 2 * builds:
                raise SystemExit(f"scenarios 2 and 3 pushed {pushed} manifests, not {2 * builds}")
    finally:
        for worker in workers:
            worker.proc.kill()
        for service in (registry, engine, moto):
            if service is not None:
                service.stop()
        shutil.rmtree(work, ignore_errors=True)

    timed = {name: rows[warmup:] for name, rows in steps.items()}
    print(f"ECR GetAuthorizationToken calls (moto server, counted server-side) for {builds} builds per scenario")
    print(f"\n1. paired, {builds} builds per side in one worker process each ({paired_seconds:.0f} s in all);")
    print(f"   per build, after each worker's first {warmup}: ms as min / median / max")
    print(f"   {'':<28} {'calls':>5} {'wall ms':>23} {'CPU ms':>23} {'of which login, wall':>23}")
    labels = {"ours": "ours", "login": "per-build docker login"}
    for name, rows in timed.items():
        print(
            f"   {labels[name]:<28} {calls[name]:>5} {spread([r['wall'] for r in rows], digits=0)}"
            f" {spread([r['cpu'] for r in rows], digits=0)} {spread([r['login'] for r in rows], digits=0)}"
        )
    wall = paired_ratio([r["wall"] for r in timed["ours"]], [r["wall"] for r in timed["login"]])
    cpu = paired_ratio([r["cpu"] for r in timed["ours"]], [r["cpu"] for r in timed["login"]])
    print(f"   per build, ours / per-build login: wall {wall:.2f}x, CPU {cpu:.2f}x (median of per-build ratios)")
    print(f"\n{'':<3}{'scenario':<40} {'calls':>5} {'wall s':>7} {'CPU s':>6}")
    for label, (seconds, cpu_seconds), count in (
        (f"2. {processes} processes, cache file", shared, shared_calls),
        (f"3. {processes} processes, no cache file", separate, separate_calls),
    ):
        print(f"   {label:<40} {count:>5} {seconds:>7.1f} {cpu_seconds:>6.1f}")

    scenario = f"{builds} builds"
    record("ecr_tokens", f"{scenario}, ours, 1 process: token calls", calls["ours"], unit="calls", goal=1)
    record("ecr_tokens", f"{scenario}, per-build docker login: token calls", calls["login"], unit="calls")
    shared_label = f"{scenario}, ours, {processes} processes, cache file: token calls"
    record("ecr_tokens", shared_label, shared_calls, unit="calls", goal=1)
    record(
        "ecr_tokens",
        f"{scenario}, ours, {processes} processes, no cache file: token calls",
        separate_calls,
        unit="calls",
        note="one per process: the comparison for the cache file",
    )
    record("ecr_tokens", "time per build, ours / per-build docker login", wall, cpu=cpu)
    return 0


def _moto_token(moto: Any) -> str:
    import boto3

    client = boto3.client(
        "ecr",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    return client.get_authorization_token(registryIds=[ACCOUNT])["authorizationData"][0]["authorizationToken"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("ours", "login", "batch"), help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ca-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--log", default=os.devnull, help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="4 builds per scenario, 2 processes")
    arguments = parser.parse_args()
    if arguments.worker:
        arguments.mode = arguments.worker
        sys.exit(_worker_main(arguments))
    sys.exit(main(arguments.quick))
