"""Real builds killed at random instants: no credential is left in any file, whatever the signal.

Each case starts ``ImageBuildEngine.build`` of a private ImageSpec in a subprocess (the rig's
dockerd and htpasswd registry, the ``docker-cli`` inner builder, alice's canary password), on the
main thread or on a worker thread as flytekit's thread pools do, and sends SIGKILL, SIGHUP, SIGQUIT
or SIGTERM at a random instant: during start-up or while the temporary docker config exists.
Afterwards every file under the run's TMPDIR, docker config and cache dirs is read: neither the
password nor its Basic form may appear. The seed is printed so a failure can be replayed
(``FPR_KILL_SEED``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from flyte_private_registry.push._build_env import PREFIX, sweep_leftovers

pytestmark = pytest.mark.integration

_BUILD = """
import os, sys, uuid
from concurrent.futures import ThreadPoolExecutor
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
from flyte_private_registry import PrivateRegistry

mode, prefix = sys.argv[1:3]
registry = PrivateRegistry(prefix, username="alice", password_env="FPR_KILL_PASSWORD")
spec = ImageSpec(name=f"kill-{uuid.uuid4().hex[:8]}", registry=prefix, copy=["payload.txt"])
print("building", flush=True)
if mode == "main":
    ImageBuildEngine.build(spec)
else:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(ImageBuildEngine.build, spec).result()
print("built", flush=True)
"""
_CATCHABLE = {signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}


@dataclass
class _Run:
    """The directories one killed build could write to."""

    root: Path

    @property
    def tmpdir(self) -> Path:
        return self.root / "tmp"

    @property
    def config(self) -> Path:
        return self.root / "docker-config"

    def env(self, docker_host: str, password: str) -> dict[str, str]:
        env = {
            **os.environ,
            "TMPDIR": str(self.tmpdir),
            "DOCKER_CONFIG": str(self.config),
            "DOCKER_HOST": docker_host,
            "XDG_CACHE_HOME": str(self.root / "cache"),
            "XDG_CONFIG_HOME": str(self.root / "xdg-config"),
            "FLYTE_PRIVATE_REGISTRY_BUILDER": "docker-cli",
            "FPR_KILL_PASSWORD": password,
        }
        env.pop("FLYTE_PRIVATE_REGISTRIES", None)
        env.pop("FLYTE_PRIVATE_REGISTRY_CONFIG", None)
        return env

    def build_dirs(self) -> list[Path]:
        return sorted(self.tmpdir.glob(f"{PREFIX}*"))


def _files_holding(roots: list[Path], needles: list[bytes]) -> list[str]:
    """Every regular file under ``roots`` (links not followed) that contains any needle."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            found += [f"{path} ({needle[:6]!r}...)" for needle in needles if needle in data]
    return found


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """The build's own process group (docker CLI children included), which this test started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _wait_for_build_dir(run: _Run, proc: subprocess.Popen[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any((d / "config.json").exists() for d in run.build_dirs()):
            return True
        time.sleep(0.005)
    return False


@pytest.fixture(scope="module")
def seed() -> int:
    value = int(os.environ.get("FPR_KILL_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"kill test seed: FPR_KILL_SEED={value}")
    return value


@pytest.mark.parametrize("thread", ["main", "worker"])
@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM], ids=lambda s: s.name
)
def test_a_killed_build_leaves_no_credential(
    signum, thread, seed, docker_engine, basic_registry, canary_password, tmp_path, request
):
    rng = random.Random(f"{seed}-{signum.name}-{thread}")
    basic = base64.b64encode(f"alice:{canary_password}".encode())
    needles = [canary_password.encode(), basic, base64.b64encode(canary_password.encode())]
    prefix = f"{basic_registry.host}/kill"
    landed = 0
    for attempt in range(3):  # three instants per case: one during start-up, two inside the build
        run = _Run(tmp_path / f"run-{attempt}")
        for directory in (run.tmpdir, run.config, run.root / "work"):
            directory.mkdir(parents=True)
        (run.root / "work" / "payload.txt").write_text(f"payload {uuid.uuid4()}\n")
        proc = subprocess.Popen(
            [sys.executable, "-c", _BUILD, thread, prefix],
            cwd=run.root / "work",
            env=run.env(docker_engine.host, canary_password),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            if attempt == 0:
                time.sleep(rng.uniform(0.0, 1.5))  # anywhere in start-up, imports, login and existence checks
            else:
                assert _wait_for_build_dir(run, proc, timeout=30), "the build never created its docker config"
                time.sleep(rng.uniform(0.0, 0.6))  # somewhere inside docker build / docker push
            in_build = bool(run.build_dirs())
            proc.send_signal(signum)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the build did not stop within 15 s of {signum.name}")
        finally:
            _kill_group(proc)  # docker CLI children the kill orphaned, so nothing writes after the check
        output = proc.stdout.read() if proc.stdout else ""
        landed += in_build

        leaks = _files_holding([run.root], needles)
        assert not leaks, f"{signum.name} on the {thread} thread left credentials in {leaks}"
        assert canary_password not in output
        if signum in _CATCHABLE and thread == "main":  # handlers are installed before the directory exists
            assert proc.returncode in (0, 128 + signum, -signum), output[-2000:]
            assert run.build_dirs() == [], f"{signum.name}: the handler did not remove the directory"
        # the next build's sweep removes whatever a dead process left (its directory holds no secret anyway)
        sweep_leftovers(str(run.tmpdir))
        assert run.build_dirs() == []
    assert landed >= 2, "the kills did not land inside a build: the case proved nothing"
