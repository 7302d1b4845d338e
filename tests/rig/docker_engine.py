"""A private, throwaway Docker engine (dockerd) for integration tests.

Each rig gets its own daemon (own data root, exec root and socket) so tests never see the host's
images, containers or credentials, and can be torn down completely.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._process import (
    MissingBinaryError,
    Service,
    kill_pid,
    pid_alive,
    require_binary,
    terminate,
)

# Unix socket paths are limited to ~108 bytes; containerd puts `containerd.sock.ttrpc` under the
# exec root, so keep the runtime directory well below that.
_MAX_RUNTIME_DIR_LEN = 60
_BUSYBOX = Path("/bin/busybox")
_BUSYBOX_APPLETS = ("sh", "cat", "echo", "ls", "env", "sleep", "true", "false", "test")
# Variables that would point the docker CLI somewhere else than our daemon.
_FOREIGN_DOCKER_VARS = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS")


class DockerCommandError(subprocess.CalledProcessError):
    """A docker CLI call failed; ``str()`` carries stdout/stderr so the pytest report says why."""

    def __str__(self) -> str:
        cmd = " ".join(self.cmd) if isinstance(self.cmd, list | tuple) else str(self.cmd)
        return (
            f"`{cmd}` exited with {self.returncode}\n"
            f"--- stdout ---\n{(self.stdout or '').strip()}\n--- stderr ---\n{(self.stderr or '').strip()}"
        )


class DockerEngine(Service):
    """A running private ``dockerd``; create it with :meth:`start`, always :meth:`stop` it."""

    def __init__(
        self,
        workdir: Path,
        runtime_dir: Path,
        owns_runtime_dir: bool,
        proc: subprocess.Popen[bytes],
        docker_cli: str,
    ) -> None:
        self.workdir = workdir
        self.runtime_dir = runtime_dir
        self._owns_runtime_dir = owns_runtime_dir
        self.proc = proc
        self.docker_cli = docker_cli
        self.socket_path = runtime_dir / "docker.sock"
        self.host = f"unix://{self.socket_path}"
        self.data_root = workdir / "data"
        self.exec_root = runtime_dir / "exec"
        self.pidfile = runtime_dir / "pid"
        self.log_path = workdir / "dockerd.log"
        # Default DOCKER_CONFIG for calls that did not choose one, so the rig never reads or
        # writes the real ~/.docker.
        self.cli_config_dir = workdir / "cli-config"

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        docker_cli: str | None = None,
        timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> DockerEngine:
        """Start a private dockerd under ``workdir`` and wait until ``docker version`` answers.

        vfs storage and no bridge/iptables make it work without kernel modules or a network
        (inside ``isolate.py``'s namespaces there is only ``lo``); a private ``--config-file``
        keeps /etc/docker/daemon.json out of the picture and the trust key out of /etc/docker.
        """
        dockerd = require_binary("dockerd", "docker.io")
        cli = docker_cli or require_binary("docker", "docker.io")
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        if len(str(workdir)) <= _MAX_RUNTIME_DIR_LEN:
            runtime_dir, owns_runtime_dir = workdir, False
        else:
            runtime_dir, owns_runtime_dir = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp")), True
        (workdir / "cli-config").mkdir(exist_ok=True)
        daemon_json = workdir / "daemon.json"
        # dockerd 20.10 otherwise creates its trust key in the machine-global /etc/docker.
        daemon_json.write_text(json.dumps({"deprecated-key-path": str(workdir / "key.json")}) + "\n")
        log_path = workdir / "dockerd.log"
        args = [
            dockerd,
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--shutdown-timeout=2",
            f"--config-file={daemon_json}",
            f"--data-root={workdir / 'data'}",
            f"--exec-root={runtime_dir / 'exec'}",
            f"--pidfile={runtime_dir / 'pid'}",
            f"--host=unix://{runtime_dir / 'docker.sock'}",
            *extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        engine = cls(workdir, runtime_dir, owns_runtime_dir, proc, cli)
        engine._become_ready(f"dockerd at {engine.host}", timeout)
        return engine

    def _probe(self) -> str | None:
        """``docker version`` answers once the daemon is up."""
        if not self.socket_path.exists():
            return "no socket yet"
        result = self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10)
        if result.returncode == 0 and result.stdout.strip():
            return None
        return (result.stderr or result.stdout).strip()

    def _shutdown(self) -> None:
        """Stop dockerd and everything it spawned (containers, containerd, shims).

        Containers are force-removed first so shutdown does not wait for a PID 1 that ignores
        SIGTERM. containerd is dockerd's child in its own session, so it is checked by pid.
        """
        containerd_pid = self._containerd_pid()
        if self.proc.poll() is None:
            try:
                ids = self.docker("ps", "-aq", check=False, timeout=10).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=30)
            except (OSError, subprocess.SubprocessError):
                pass
        terminate(self.proc, timeout=20)
        if containerd_pid is not None:
            kill_pid(containerd_pid)
        for pid in self._shim_pids():
            kill_pid(pid)
        self._unmount_leftovers()
        if self._owns_runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    @property
    def pid(self) -> int:
        """Process id of dockerd."""
        return self.proc.pid

    def _containerd_pid(self) -> int | None:
        try:
            pid = int((self.exec_root / "containerd" / "containerd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def _shim_pids(self) -> list[int]:
        """Pids of containerd shims bound to *our* containerd socket (never anybody else's)."""
        marker = str(self.exec_root / "containerd" / "containerd.sock").encode()
        pids: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                pids.append(int(entry.name))
        return pids

    def _unmount_leftovers(self) -> None:
        """Lazily unmount anything still mounted under our dirs (dockerd bind-mounts its data root)."""
        roots = (str(self.data_root), str(self.exec_root))
        try:
            lines = Path("/proc/self/mounts").read_text().splitlines()
        except OSError:
            return
        targets = []
        for line in lines:
            fields = line.split()
            if len(fields) < 2:
                continue
            target = fields[1].replace("\\040", " ")
            if any(target == root or target.startswith(root + "/") for root in roots):
                targets.append(target)
        for target in sorted(set(targets), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)

    # ------------------------------------------------------------------ CLI
    def env(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """``os.environ`` aimed at this daemon: DOCKER_HOST set, contexts/TLS variables removed.

        DOCKER_CONFIG is kept if the caller set one (tests do, via ``user_docker_config``), else it
        points at a private dir so nothing reads the real ~/.docker. In ``extra`` a value of
        ``None`` removes that variable.
        """
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_DOCKER_VARS}
        env["DOCKER_HOST"] = self.host
        env.setdefault("DOCKER_CONFIG", str(self.cli_config_dir))
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def docker(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this daemon (``env`` is layered on :meth:`env`).

        Output is captured as text; with ``check`` a non-zero exit raises
        :class:`DockerCommandError` whose message includes stdout and stderr.
        """
        cmd = [self.docker_cli, *args]
        result = subprocess.run(
            cmd,
            env=self.env(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise DockerCommandError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    # ------------------------------------------------------------------ images
    def build_scratch_image(self, tag: str, files: Mapping[str, bytes]) -> str:
        """Build a ``FROM scratch`` image holding ``files`` (path in image -> content); return ``tag``.

        No base image can be pulled here, so scratch is the only buildable base. The classic
        builder is forced (``DOCKER_BUILDKIT=0``) because Debian's CLI ships without buildx.
        """
        context = self.workdir / "contexts" / uuid.uuid4().hex[:12]
        rootfs = context / "rootfs"
        rootfs.mkdir(parents=True)
        for name, content in files.items():
            relative = Path(name.lstrip("/"))
            if not relative.parts or ".." in relative.parts:
                raise ValueError(f"bad image path {name!r}")
            target = rootfs / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        lines = ["FROM scratch"]
        if files:
            lines.append("COPY rootfs/ /")
        lines.append('LABEL org.flyte-private-registry.rig="scratch"')
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")
        try:
            self.docker("build", "--tag", tag, str(context), env={"DOCKER_BUILDKIT": "0"})
        finally:
            shutil.rmtree(context, ignore_errors=True)
        return tag

    def import_busybox(self, tag: str) -> str:
        """Import a minimal busybox rootfs as ``tag`` (CMD /bin/sh), for images that must *run*.

        The static busybox from Debian's busybox-static needs no libc, so a one-binary rootfs
        plus applet symlinks is a working image without any registry access.
        """
        tar_path = self._busybox_rootfs()
        self.docker("import", "--change", 'CMD ["/bin/sh"]', str(tar_path), tag)
        return tag

    def _busybox_rootfs(self) -> Path:
        """Write (once) a deterministic rootfs tarball: same bytes -> same layer digest every run."""
        tar_path = self.workdir / "busybox-rootfs.tar"
        if tar_path.exists():
            return tar_path
        if not _BUSYBOX.is_file():
            raise MissingBinaryError(
                f"{_BUSYBOX} is missing; install it with `apt-get install -y busybox-static` and run "
                "the project's test command again."
            )
        binary = _BUSYBOX.read_bytes()
        if b"ld-linux" in binary[:16384]:
            raise MissingBinaryError(
                f"{_BUSYBOX} is dynamically linked and cannot run in a scratch image; install "
                "`busybox-static` (apt-get install -y busybox-static) instead of `busybox`."
            )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for directory, mode in (("bin", 0o755), ("tmp", 0o1777), ("etc", 0o755)):
                info = tarfile.TarInfo(directory)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
                tar.addfile(info)
            info = tarfile.TarInfo("bin/busybox")
            info.size, info.mode, info.mtime = len(binary), 0o755, 0
            tar.addfile(info, io.BytesIO(binary))
            for applet in _BUSYBOX_APPLETS:
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "busybox", 0o777, 0
                tar.addfile(info)
            passwd = b"root:x:0:0:root:/:/bin/sh\n"
            info = tarfile.TarInfo("etc/passwd")
            info.size, info.mode, info.mtime = len(passwd), 0o644, 0
            tar.addfile(info, io.BytesIO(passwd))
        tar_path.write_bytes(buffer.getvalue())
        return tar_path

    def image_digest(self, reference: str) -> str | None:
        """Repo digest recorded for ``reference`` after a push/pull (``sha256:...``), or None."""
        result = self.docker("image", "inspect", "--format", "{{json .RepoDigests}}", reference)
        digests = json.loads(result.stdout or "null") or []
        repository = reference.split("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        for item in digests:
            name, _, digest = item.partition("@")
            if name == repository:
                return digest
        return None
