"""The two services the demo needs on a laptop or CI machine: a Docker engine and a registry with auth.

A reachable engine (``DOCKER_HOST`` or the default socket) is used as it is. Without one, and
as root with ``dockerd`` installed, the demo starts a private engine (vfs storage, no iptables)
in its work directory. The registry is the ``registry``/``docker-registry`` binary, or the
``registry:2`` image when it is already present locally (nothing is pulled from the internet),
with htpasswd Basic auth on a random loopback port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class DemoError(RuntimeError):
    """Something the demo needs is missing; the message says what to install or start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise DemoError(f"{what} did not become ready within {timeout:.0f}s")


@dataclass
class Engine:
    """A Docker engine the demo talks to; ``owned`` engines are stopped at the end."""

    env: dict[str, str]
    description: str
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None

    def docker(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        merged = {**os.environ, **self.env, **(env or {})}
        done = subprocess.run(["docker", *args], env=merged, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise DemoError(f"docker {' '.join(args[:2])} failed: {(done.stderr or done.stdout).strip()[-400:]}")
        return done

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.root is not None:
            subprocess.run(["umount", "-R", str(self.root / "exec")], capture_output=True, check=False)
            shutil.rmtree(self.root, ignore_errors=True)


def _engine_answers(env: dict[str, str]) -> bool:
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_engine() -> Engine:
    """Use the engine that answers, or start a private one (root + dockerd installed)."""
    if shutil.which("docker") is None:
        raise DemoError("the docker CLI is not installed (Debian/Ubuntu: apt-get install docker.io)")
    if _engine_answers({}):
        return Engine({}, f"existing engine ({os.environ.get('DOCKER_HOST', 'default socket')})")
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if dockerd is None or os.geteuid() != 0:
        raise DemoError(
            "no Docker engine answers and the demo cannot start one: start Docker (or set DOCKER_HOST), "
            "or run as root with dockerd installed (apt-get install docker.io)"
        )
    root = Path(tempfile.mkdtemp(prefix="fpr-demo-dockerd-"))
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as the daemon
    process = subprocess.Popen(
        [
            dockerd,
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            f"--data-root={root / 'data'}",
            f"--exec-root={root / 'exec'}",
            f"--pidfile={root / 'docker.pid'}",
            f"--host=unix://{sock}",
            "--shutdown-timeout=2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    env = {"DOCKER_HOST": f"unix://{sock}"}
    engine = Engine(env, f"private dockerd started by the demo ({sock})", process, root)
    try:
        _wait(lambda: process.poll() is None and _engine_answers(env), 30, "dockerd")
    except DemoError:
        engine.stop()
        raise
    return engine


def _htpasswd_line(user: str, password: str) -> str:
    htpasswd = shutil.which("htpasswd")
    if htpasswd is not None:
        done = subprocess.run([htpasswd, "-niB", user], input=password, capture_output=True, text=True, check=True)
        return done.stdout.strip()
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError:
        raise DemoError("need `htpasswd` (apt-get install apache2-utils) or `pip install bcrypt`") from None
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}"


@dataclass
class LocalRegistry:
    """A distribution registry with htpasswd auth on 127.0.0.1, started from a binary or a local image."""

    host: str
    description: str
    process: subprocess.Popen[bytes] | None = None
    container: str | None = None
    engine: Engine | None = None
    workdir: Path | None = None
    _files: list[Path] = field(default_factory=list)

    @classmethod
    def start(cls, engine: Engine, user: str, password: str) -> LocalRegistry:
        workdir = Path(tempfile.mkdtemp(prefix="fpr-demo-registry-"))
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(_htpasswd_line(user, password) + "\n")
        htpasswd.chmod(0o600)
        port = free_port()
        binary = shutil.which("registry") or shutil.which("docker-registry")
        if binary is not None:
            config = workdir / "config.yml"
            config.write_text(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {workdir / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
                f"auth:\n  htpasswd:\n    realm: flyte-private-registry-demo\n    path: {htpasswd}\n"
            )
            log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - lives as long as the registry
            process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
            registry = cls(f"127.0.0.1:{port}", f"{Path(binary).name} binary", process=process, workdir=workdir)
        elif engine.docker("image", "inspect", "registry:2", check=False).returncode == 0:
            name = f"fpr-demo-registry-{port}"
            engine.docker(
                "run",
                "-d",
                "--rm",
                "--name",
                name,
                "-p",
                f"127.0.0.1:{port}:5000",
                "-v",
                f"{workdir}:/auth:ro",
                "-e",
                "REGISTRY_AUTH=htpasswd",
                "-e",
                "REGISTRY_AUTH_HTPASSWD_REALM=flyte-private-registry-demo",
                "-e",
                "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
                "registry:2",
            )
            registry = cls(f"127.0.0.1:{port}", "registry:2 image", container=name, engine=engine, workdir=workdir)
        else:
            raise DemoError(
                "no registry to start: install Debian's docker-registry (apt-get install docker-registry) "
                "or load the registry:2 image into the engine"
            )

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        try:
            _wait(answers, 20, f"registry on 127.0.0.1:{port}")
        except DemoError:
            registry.stop()
            raise
        return registry

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.container is not None and self.engine is not None:
            self.engine.docker("rm", "-f", self.container, check=False)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
