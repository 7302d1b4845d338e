"""What the inner builder needs on this machine, checked before a build starts.

flytekit's default builder runs ``docker build --push``: on a docker without buildx (Debian's
docker.io, many CI images) it dies in a long ``CalledProcessError`` ending in
``unknown flag: --push``, after the registry work is done. Checking first turns that into one
error that names everything missing and, for each, the two ways out. The check runs only when a
build is about to happen, never for an image that is already in the registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec, ImageSpecBuilder

from .._errors import ConfigurationError

_TIMEOUT_SECONDS = 20.0
USE_DOCKER_CLI = (
    'build with plain `docker build` instead: PrivateRegistry(..., builder="docker-cli") '
    "or FLYTE_PRIVATE_REGISTRY_BUILDER=docker-cli"
)


@dataclass(frozen=True)
class Missing:
    """One thing the builder needs and this machine lacks, with the two ways out."""

    what: str
    detail: str
    fixes: tuple[str, str]

    def render(self) -> str:
        return f"- {self.what}: {self.detail}\n  fix: {self.fixes[0]};\n   or: {self.fixes[1]}."


def probe(*argv: str) -> tuple[bool, str]:
    """Run a short command; (succeeded, its first line of stderr or stdout)."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        return False, f"{argv[0]} is not on PATH"
    except subprocess.TimeoutExpired:
        return False, f"`{' '.join(argv)}` did not answer within {_TIMEOUT_SECONDS:.0f}s"
    lines = [line.strip() for line in (done.stderr.strip() or done.stdout.strip()).splitlines() if line.strip()]
    return done.returncode == 0, (lines[0][:300] if lines else f"exit status {done.returncode}")


def docker_cli() -> Missing | None:
    if shutil.which("docker") is not None:
        return None
    return Missing(
        "the docker CLI",
        "`docker` is not on PATH",
        (
            "install it (`apt-get install docker.io` on Debian/Ubuntu, or Docker's docker-ce-cli)",
            "run pyflyte where docker is installed (a CI job or machine with docker)",
        ),
    )


def docker_daemon() -> Missing | None:
    """The daemon the docker CLI would use (DOCKER_HOST, the current context) must answer."""
    ok, said = probe("docker", "version", "--format", "{{.Server.Version}}")
    if ok:
        return None
    return Missing(
        "a reachable docker daemon",
        f"`docker version` said: {said}",
        (
            "start it (`sudo systemctl start docker`, or Docker Desktop) and make sure this user may use it",
            "point the docker CLI at a daemon that runs: export DOCKER_HOST=..., or `docker context use NAME`",
        ),
    )


def buildkit() -> Missing | None:
    """flytekit's default builder passes ``--push``, which only BuildKit (buildx) understands."""
    if os.environ.get("DOCKER_BUILDKIT", "").strip().lower() in ("0", "false"):
        return Missing(
            "BuildKit",
            f"DOCKER_BUILDKIT={os.environ['DOCKER_BUILDKIT']} selects docker's classic builder, which has no `--push`",
            ("unset DOCKER_BUILDKIT (or set it to 1)", USE_DOCKER_CLI),
        )
    ok, said = probe("docker", "buildx", "version")
    if ok:
        return None
    return Missing(
        "docker buildx (BuildKit), which flytekit's default builder needs for `docker build --push`",
        f"`docker buildx version` said: {said}",
        (
            "install buildx: `apt-get install docker-buildx` (Debian/Ubuntu docker.io) or "
            "docker-buildx-plugin (Docker's own packages)",
            USE_DOCKER_CLI,
        ),
    )


def envd() -> Missing | None:
    if shutil.which("envd") is not None:
        return None
    return Missing(
        "the envd binary",
        "`envd` is not on PATH (flytekitplugins-envd runs it)",
        (
            "install it: pip install 'envd>=0.3.39' into the environment pyflyte runs from",
            'use another builder: PrivateRegistry(..., builder="docker-cli") or FLYTE_PRIVATE_REGISTRY_BUILDER='
            "docker-cli (or builder 'default' where buildx exists)",
        ),
    )


def _default_builder() -> list[Missing]:
    missing = docker_cli()
    if missing is not None:
        return [missing]
    return [m for m in (buildkit(), docker_daemon()) if m is not None]


#: What builders we do not own need; a builder may also say itself (``missing_requirements(spec)``).
KNOWN: dict[str, Callable[[], list[Missing]]] = {
    "default": _default_builder,
    "envd": lambda: [m for m in (envd(),) if m is not None],
}


def builder_name(builder: ImageSpecBuilder) -> str:
    for name, (registered, _) in ImageBuildEngine.get_registry().items():
        if registered is builder:
            return name
    return str(getattr(builder, "builder_type", type(builder).__name__))


def require_ready(builder: ImageSpecBuilder, spec: ImageSpec) -> None:
    """Raise one ``ConfigurationError`` listing everything ``builder`` lacks to build ``spec`` here."""
    name = builder_name(builder)
    missing = KNOWN[name]() if name in KNOWN else []
    own = getattr(builder, "missing_requirements", None)
    if callable(own):
        missing.extend(own(spec))
    if not missing:
        return
    raise ConfigurationError(
        f"cannot build {spec.image_name()} with the {name!r} ImageSpec builder on this machine; nothing was "
        f"built or pushed. Missing:\n" + "\n".join(m.render() for m in missing)
    )
