"""The demo's steps, each shown as it runs. Nothing secret is printed; files holding credentials are 0600."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..pull._objects import write_private
from ._services import DemoError, Engine, LocalRegistry, ensure_engine

WORKFLOW_MODULE = "demo_workflow"
PULL_SECRET = "demo-registry-pull"


class Demo:
    def __init__(self, console: Console, workdir: Path, builder: str, project: str, domain: str) -> None:
        self.console = console
        self.workdir = workdir
        self.builder = builder
        self.project = project
        self.domain = domain
        self.step_no = 0
        self.user = "demo"
        self.password = secrets.token_urlsafe(24)
        self.engine: Engine | None = None
        self.registry: LocalRegistry | None = None

    # -- presentation ------------------------------------------------------------------------
    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.step_no += 1
        self.console.print(f"[bold cyan]{self.step_no}. {escape(title)}[/bold cyan]")
        yield

    def ok(self, text: str) -> None:
        self.console.print(f"   [green]✓[/green] {escape(text)}")

    def note(self, text: str) -> None:
        self.console.print(f"   [dim]{escape(text)}[/dim]")

    # -- helpers -----------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        assert self.registry is not None
        return f"{self.registry.host}/demo"

    def child_env(self) -> dict[str, str]:
        assert self.engine is not None
        env = {**os.environ, **self.engine.env}
        env.update(
            {
                "DEMO_REGISTRY": self.prefix,
                "DEMO_REGISTRY_USER": self.user,
                "DEMO_REGISTRY_PASSWORD": self.password,
                "DEMO_BUILDER": self.builder,
                "FLYTE_PRIVATE_REGISTRY_BUILDER": "default" if self.builder == "default" else "docker-cli",
            }
        )
        return env

    def _busybox_rootfs(self) -> Path | None:
        busybox = shutil.which("busybox")
        if busybox is None:
            return None
        tar_path = self.workdir / "busybox-rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(busybox, arcname="bin/busybox")
            for applet in ("sh", "cat", "echo", "ls"):
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
            for directory in ("etc", "tmp", "root"):
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
        return tar_path

    # -- steps -------------------------------------------------------------------------------
    def start_services(self) -> None:
        with self.step("Docker engine"):
            self.engine = ensure_engine()
            self.ok(self.engine.description)
        with self.step("A local registry with authentication"):
            self.registry = LocalRegistry.start(self.engine, self.user, self.password)
            import httpx

            anonymous = httpx.get(f"http://{self.registry.host}/v2/", timeout=5).status_code
            self.ok(f"{self.registry.description} on {self.registry.host}, htpasswd user {self.user!r}")
            if anonymous != 401:
                raise DemoError(f"the demo registry answers anonymous requests with HTTP {anonymous}, not 401")
            self.note(f"anonymous GET /v2/ answers HTTP {anonymous}: it really is private")

    def push_base(self) -> str | None:
        """An imported busybox pushed as a private base image (so the task image can run)."""
        if self.builder == "default":
            return None
        with self.step("A private base image"):
            rootfs = self._busybox_rootfs()
            if rootfs is None:
                self.note("busybox not installed: the task image is built FROM scratch (it will not run)")
                return None
            from ..credentials import Credential, Secret
            from ..push._build_env import patched_environ, private_docker_config

            assert self.engine is not None and self.registry is not None
            base = f"{self.prefix}/base:busybox"
            self.engine.docker("import", "--change", 'CMD ["/bin/sh"]', str(rootfs), base)
            credential = Credential(self.user, Secret(self.password), source="demo")
            with private_docker_config({self.registry.host: credential}) as route, patched_environ(route.env):
                self.engine.docker("push", base)
            self.engine.docker("rmi", base)
            self.ok(f"pushed {base} through the library's credential helper (no docker login)")
            return base

    def package(self, base: str | None) -> Path:
        with self.step(
            f"pyflyte package (builder: {'flytekit default' if self.builder == 'default' else 'docker-cli'})"
        ):
            source = Path(__file__).with_name("workflow.py")
            shutil.copy(source, self.workdir / f"{WORKFLOW_MODULE}.py")
            env = self.child_env()
            if base:
                env["DEMO_BASE_IMAGE"] = base
            pyflyte = Path(sys.executable).with_name("pyflyte")
            command = [str(pyflyte), "--pkgs", WORKFLOW_MODULE, "package", "--force", "--output", "demo.tgz"]
            self.note("$ " + " ".join(["pyflyte", *command[1:]]))
            process = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip()
                if self.password in line:  # belt and braces: never echo the secret
                    line = line.replace(self.password, "***")
                if line.strip():
                    self.note("  " + line)
            if process.wait() != 0:
                raise DemoError("pyflyte package failed (output above)")
            self.ok(f"packaged {self.workdir / 'demo.tgz'}")
            return self.workdir / "demo.tgz"

    def show_tasks(self, archive: Path) -> str:
        from flyteidl.admin import task_pb2

        with self.step("Pull secrets on the serialized tasks"):
            table = Table("task", "image", "imagePullSecrets")
            for column in table.columns:
                column.overflow = "fold"
            private_image = ""
            with tarfile.open(archive) as tar:
                for member in sorted(tar.getmembers(), key=lambda m: m.name):
                    if not member.name.endswith("_1.pb"):
                        continue
                    spec = task_pb2.TaskSpec()
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    spec.ParseFromString(extracted.read())
                    pod = json.loads(_struct_json(spec.template.k8s_pod.pod_spec))
                    secrets_ = ", ".join(s.get("name", "") for s in pod.get("imagePullSecrets", []) or []) or "-"
                    image = spec.template.container.image or (pod.get("containers") or [{}])[0].get("image", "")
                    table.add_row(spec.template.id.name, image, secrets_)
                    if secrets_ != "-":
                        private_image = image or private_image
            self.console.print(table)
            if not private_image:
                raise DemoError("no task carries a pull secret: the pull path did not attach it")
            self.ok("the private task references its pull secret; the public one has none")
            return private_image

    def render_secret(self) -> dict[str, object]:
        with self.step(f"Cluster objects for namespace {self.project}-{self.domain}"):
            from .._declaration import PrivateRegistry, not_declaring

            with not_declaring():
                registry = PrivateRegistry(
                    self.prefix, username=self.user, password=self.password, pull_secret=PULL_SECRET
                )
            objects = registry.cluster_objects(projects=[self.project], domains=[self.domain])
            path = objects.write(self.workdir / "cluster-objects.yaml")
            for document in objects.documents:
                self.ok(f"{document.kind} {document.namespace}/{document.name}")
            self.note(f"written to {path} (mode {oct(path.stat().st_mode & 0o777)}); apply with kubectl apply -f")
            secret = next(d for d in objects.manifests if d["kind"] == "Secret")
            return secret

    def pull_back(self, image: str, secret: dict[str, object]) -> None:
        assert self.engine is not None
        with self.step("Pull the image back with only the Secret's .dockerconfigjson"):
            data = secret["data"]
            assert isinstance(data, dict)
            payload = base64.b64decode(data[".dockerconfigjson"])
            with tempfile.TemporaryDirectory(prefix="fpr-demo-pull-") as tmp:
                config = Path(tmp) / "config.json"
                fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                self.engine.docker("rmi", "-f", image, check=False)
                empty = Path(tmp) / "empty"
                empty.mkdir()
                refused = self.engine.docker("pull", image, env={"DOCKER_CONFIG": str(empty)}, check=False)
                if refused.returncode == 0:
                    raise DemoError("the registry served the image anonymously: the demo registry is not private")
                self.ok("without credentials: pull refused")
                self.engine.docker("pull", image, env={"DOCKER_CONFIG": tmp})
                self.ok(f"with the Secret: pulled {image}")
            ran = self.engine.docker("run", "--rm", "--network", "none", image, "cat", "/greeting.txt", check=False)
            if ran.returncode == 0:
                self.ok(f"ran it: {ran.stdout.strip()}")

    def stop(self) -> None:
        for service in (self.registry, self.engine):
            if service is not None:
                service.stop()


def _struct_json(struct: object) -> str:
    from google.protobuf.json_format import MessageToJson

    return MessageToJson(struct)  # type: ignore[arg-type]


def run(
    workdir: Path,
    *,
    builder: str = "offline",
    project: str = "flytesnacks",
    domain: str = "development",
    keep: bool = False,
    console: Console | None = None,
) -> None:
    """Run the whole demo; raises :class:`DemoError` with what is missing or what went wrong."""
    console = console or Console(highlight=False)
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    workdir.chmod(0o700)  # also when it already existed: it will hold a file with credentials
    demo = Demo(console, workdir, builder, project, domain)
    try:
        demo.start_services()
        base = demo.push_base()
        archive = demo.package(base)
        image = demo.show_tasks(archive)
        secret = demo.render_secret()
        demo.pull_back(image, secret)
        console.print(
            "[bold green]Done:[/bold green] pushed with the library, packaged with pull secrets, "
            "pulled back with only the Secret."
        )
    finally:
        if keep and demo.registry is not None:
            login = write_private(
                workdir / "registry-login.txt",
                f"registry {demo.prefix}\nuser {demo.user}\npassword {demo.password}\n",
            )
            console.print(f"[dim]--keep: registry {demo.prefix} and engine left running; login in {login} (0600)[/dim]")
        else:
            demo.stop()
