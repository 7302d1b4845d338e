"""ECR ``GetAuthorizationToken`` calls per registry: 50 builds in one process, and 50 across 5 processes.

Everything runs for real except AWS itself: moto in server mode answers ECR's control plane
(started here), a rig registry answers as ``123456789012.dkr.ecr.us-east-1.amazonaws.com``
(TLS + Basic, user ``AWS`` with moto's token, mapped in the run's private /etc/hosts: run as root;
the script re-runs itself under ``tests/rig/isolate.py``), and each build
is ``ImageBuildEngine.build(ImageSpec(...))`` through the library's builder and the ``docker-cli``
inner builder against a private dockerd. Calls are counted by moto's request recorder, so calls
from every process count.

moto stamps every token ``expiresAt = 2015-01-01``; each process therefore injects a clock set
12 hours before that, as a freshly issued real token would be. Goal: 1 call in each scenario
while the token is valid. For comparison, the same 5 processes with the cache file turned off,
and the per-build ``aws ecr get-login-password | docker login`` many CI scripts use (one call
per build). Prints counts and ratios; nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

ACCOUNT = "123456789012"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
PREFIX = f"{ECR_HOST}/bench"
ECR_IP = "127.0.0.61"
BUILDS = 50
PROCESSES = 5
#: Twelve hours before moto's fixed expiresAt (2015-01-01): "now" for a token just issued.
NOW = datetime(2015, 1, 1, tzinfo=timezone.utc) - timedelta(hours=12)


def build_many(first: int, count: int, ca_file: str, token_cache: bool) -> None:
    """``count`` ImageSpec builds in this process (distinct tags: the env differs)."""
    from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec

    from flyte_private_registry import PrivateRegistry

    registry = PrivateRegistry.ecr(PREFIX, ca_file=ca_file, clock=lambda: NOW, token_cache=token_cache)
    for index in range(first, first + count):
        spec = ImageSpec(name="app", registry=registry.registry, copy=["payload.txt"], env={"BUILD": str(index)})
        ImageBuildEngine.build(spec)


def _worker_main(args: argparse.Namespace) -> int:
    build_many(args.first, args.count, args.ca_file, not args.no_cache)
    return 0


def _run_processes(workdir: Path, ca_file: Path, *, offset: int, token_cache: bool, env: dict[str, str]) -> float:
    per_process = BUILDS // PROCESSES
    started = time.perf_counter()
    procs = []
    for index in range(PROCESSES):
        command = [
            sys.executable,
            __file__,
            "--worker",
            "--first",
            str(offset + index * per_process),
            "--count",
            str(per_process),
            "--ca-file",
            str(ca_file),
        ]
        if not token_cache:
            command.append("--no-cache")
        log = open(workdir / f"worker-{offset + index}.log", "wb")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    for proc, log in procs:
        code = proc.wait()
        log.close()
        if code != 0:
            raise SystemExit(f"worker failed ({code}), see {log.name}:\n{Path(log.name).read_text()[-3000:]}")
    return time.perf_counter() - started


@contextlib.contextmanager
def _quiet(log_path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (and its docker children's) to a log while building."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main() -> int:
    from rig.isolate import ensure_isolated

    ensure_isolated()  # the ECR name goes into a private /etc/hosts, never the machine's
    from provider_rig import wait_until_daemon_resolves
    from rig import CertificateAuthority, DockerEngine, Registry, hosts_entries
    from rig.moto_server import MotoServer

    work = Path(tempfile.mkdtemp(prefix="fpr-bench-ecr-"))
    moto = engine = registry = None
    try:
        moto = MotoServer.start(work / "moto")
        ca = CertificateAuthority(work / "ca")
        engine = DockerEngine.start(work / "docker")
        (work / "project").mkdir()
        (work / "project" / "payload.txt").write_text("payload\n")
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
            }
        )
        token = base64.b64decode(_moto_token(moto)).decode().partition(":")[2]
        with hosts_entries({ECR_HOST: ECR_IP}):
            registry = Registry.start_basic(
                work / "registry", {"AWS": token}, host=ECR_IP, port=443, hostnames=[ECR_HOST], ca=ca
            )
            wait_until_daemon_resolves(engine, ECR_HOST)
            results = []

            # 1. one process, 50 builds (this process)
            moto.reset()
            os.environ.clear()
            os.environ.update({**env, "XDG_CACHE_HOME": str(work / "cache-one")})
            os.chdir(work / "project")
            started = time.perf_counter()
            with _quiet(work / "project" / "one-process.log"):
                build_many(0, BUILDS, str(ca.ca_file), token_cache=True)
            elapsed = time.perf_counter() - started
            results.append(("1 process", BUILDS, moto.calls("GetAuthorizationToken"), elapsed))

            # 2. five processes started together, 10 builds each, sharing the cache file
            moto.reset()
            elapsed = _run_processes(
                work / "project",
                ca.ca_file,
                offset=1000,
                token_cache=True,
                env={**env, "XDG_CACHE_HOME": str(work / "c2")},
            )
            results.append((f"{PROCESSES} processes, cache file", BUILDS, moto.calls("GetAuthorizationToken"), elapsed))

            # 3. the same without the cache file (each process keeps its token in memory only)
            moto.reset()
            elapsed = _run_processes(
                work / "project",
                ca.ca_file,
                offset=2000,
                token_cache=False,
                env={**env, "XDG_CACHE_HOME": str(work / "c3")},
            )
            results.append(
                (f"{PROCESSES} processes, no cache file", BUILDS, moto.calls("GetAuthorizationToken"), elapsed)
            )
        _report(results)
        return 0
    finally:
        for service in (registry, engine, moto):
            if service is not None:
                service.stop()
        shutil.rmtree(work, ignore_errors=True)


def _moto_token(moto: object) -> str:
    import boto3

    client = boto3.client(
        "ecr",
        endpoint_url=moto.url,  # type: ignore[attr-defined]
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    return client.get_authorization_token(registryIds=[ACCOUNT])["authorizationData"][0]["authorizationToken"]


def _report(results: list[tuple[str, int, int, float]]) -> None:
    naive = BUILDS  # `aws ecr get-login-password | docker login` before every build
    print("ECR GetAuthorizationToken calls (moto server, counted server-side); goal: 1 per scenario")
    print(f"{'scenario':<32} {'builds':>6} {'calls':>6} {'calls/build':>12} {'vs per-build login':>19} {'seconds':>8}")
    for name, builds, calls, elapsed in results:
        ratio = f"{naive / calls:.0f}x fewer" if calls else "n/a"
        print(f"{name:<32} {builds:>6} {calls:>6} {calls / builds:>12.2f} {ratio:>19} {elapsed:>8.1f}")
    print(f"{'per-build docker login (model)':<32} {BUILDS:>6} {naive:>6} {1:>12.2f} {'1x':>19} {'':>8}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ca-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    sys.exit(_worker_main(arguments) if arguments.worker else main())
