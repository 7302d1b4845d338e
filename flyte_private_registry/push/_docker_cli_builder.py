"""``docker-cli``: an ImageSpec builder for machines without buildx (Debian's docker.io, many CI images).

flytekit's default builder needs buildx and BuildKit (``RUN --mount``, ``docker build --push``) and
pulls uv, micromamba and a Dockerfile frontend. This one writes a Dockerfile that docker's classic
builder understands and runs ``docker build`` then ``docker push`` through ``subprocess`` with the
inherited environment, as flytekit's default does. It mirrors that builder's semantics field by
field (see ``docs/docker-cli-builder.md``):

- ``base_image`` (a name or an ImageSpec). Unset: ``python:<python_version>-slim-bookworm`` when
  something is installed (flytekit: Debian bookworm plus micromamba's Python), else ``scratch``;
- ``apt_packages`` with ``apt-get``; ``packages`` and ``requirements`` (plus ``flytekit``, added as
  flytekit adds it) with the base image's ``python3 -m pip``, from ``pip_index``/
  ``pip_extra_index_url`` with ``pip_extra_args``; ``python_exec``: a venv at ``/root/.venv`` made
  from it, as flytekit does; ``python_version`` with a ``base_image``: a check that the base's
  Python is that version (nothing installs another Python without conda);
- ``env`` (with ``PYTHONPATH=/root``), ``entrypoint``, the source files selected by ``source_root``
  and ``source_copy_mode`` under ``/root``, each ``copy`` entry at ``/root/<path as given>``,
  ``commands`` in one shell, ``WORKDIR /root`` and ``_F_IMG_ID`` (``ImageSpec.is_container()``).

The image's name and tag are ``spec.image_name()``, flytekit's own hash. Fields that need BuildKit
or conda (``pip_secret_mounts``, ``conda_*``, ``cuda``/``cudnn``, uv/poetry lock files) are refused
with a ``ValueError`` before any docker command runs. Before a build that installs packages, the
package index must be reachable (checked with the rest of the machine's requirements, see
``push/_requirements.py``), so an offline machine gets one clear error instead of pip's retries.

It is registered with a priority below flytekit's own builders, so it is only used on request,
and it is meant to run *inside* the private-registry builder, which logs in, routes credentials
and verifies the push: ask for it with ``PrivateRegistry(..., builder="docker-cli")`` or
``FLYTE_PRIVATE_REGISTRY_BUILDER=docker-cli``. (``ImageSpec(builder="docker-cli")`` would skip
that wrapper, and with it the registry's credentials and the push verification.)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flytekit.image_spec.image_spec import _F_IMG_ID, ImageSpec, ImageSpecBuilder

if TYPE_CHECKING:
    import dataclasses

    from ._requirements import Missing

BUILDER_NAME = "docker-cli"
PRIORITY = -1

#: ImageSpec fields this builder writes into the image (or into its name).
HONOURED = frozenset(
    {
        "name",
        "registry",
        "tag_format",
        "platform",
        "base_image",
        "env",
        "source_root",
        "source_copy_mode",
        "copy",
        "commands",
        "entrypoint",
        "python_version",
        "python_exec",
        "packages",
        "requirements",
        "pip_index",
        "pip_extra_index_url",
        "pip_extra_args",
        "apt_packages",
    }
)
#: ImageSpec fields that do not change what this builder puts into the image, and why.
IGNORED = {
    "builder": "it only selects the builder",
    "runtime_packages": "flytekit installs them when the task starts, not at build time",
    "builder_options": "they are options for other builders",
    "builder_config": "it names the uv and micromamba images of flytekit's default builder",
    "registry_config": "the docker daemon's own registry configuration applies",
}
#: ImageSpec fields that need BuildKit or conda: refused, and why.
REFUSED = {
    "pip_secret_mounts": "mounts BuildKit secrets, which docker's classic builder cannot",
    "conda_packages": "installs conda packages with micromamba",
    "conda_channels": "installs from conda channels with micromamba",
    "cuda": "flytekit refuses it too: install CUDA from PyPI or use a CUDA base_image",
    "cudnn": "flytekit refuses it too: install cuDNN from PyPI or use a CUDA base_image",
}
#: Fields that make the build install Python packages (flytekit's default then always adds flytekit).
PYTHON_FIELDS = (
    "packages",
    "requirements",
    "python_version",
    "python_exec",
    "pip_index",
    "pip_extra_index_url",
    "pip_extra_args",
)
DEFAULT_INDEX = "https://pypi.org/simple"
VENV = "/root/.venv"
_SOURCE_DIR = "source"  # the context's copy of the files selected by source_root/source_copy_mode
_COPY_DIR = "copy"  # the context's copies of `copy` entries, at their paths as given
_REQUIREMENTS = "requirements.txt"  # the context's pip requirements (the requirements file, packages, flytekit)
_IMAGE_REQUIREMENTS_DIR = "/tmp/flyte-private-registry"  # removed by the RUN that installs
_PROBE_TIMEOUT_SECONDS = 5.0


def _is_set(value: Any, default: Any) -> bool:
    if value is None or (isinstance(value, str | list | tuple | dict | set) and not value):
        return False
    return bool(value != default)


def _default(field: dataclasses.Field[Any]) -> Any:
    import dataclasses

    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def set_fields(spec: ImageSpec) -> list[str]:
    """The ImageSpec fields that are set: not None, not empty and not their default."""
    import dataclasses

    return [field.name for field in dataclasses.fields(spec) if _is_set(getattr(spec, field.name), _default(field))]


def check_supported(spec: ImageSpec) -> None:
    """Raise ``ValueError`` naming every set field plain ``docker build`` cannot honour, and the alternatives."""
    names = set_fields(spec)
    refused = [f"{name} ({REFUSED[name]})" for name in names if name in REFUSED]
    lock = os.path.basename(spec.requirements) if spec.requirements else ""
    if lock in ("uv.lock", "poetry.lock"):
        refused.append(f"requirements={lock} (installs with {lock.split('.')[0]} from a BuildKit mount)")
    unknown = [name for name in names if name not in REFUSED and name not in HONOURED and name not in IGNORED]
    problems = []
    if refused:
        problems.append(
            f"it builds with plain `docker build` (no BuildKit, no conda), so it cannot honour {', '.join(refused)}"
        )
    if unknown:
        problems.append(f"it does not know the ImageSpec field(s) {', '.join(unknown)}, so it cannot honour them")
    if problems:
        raise ValueError(
            f"the docker-cli builder cannot build ImageSpec {spec.name!r}: {'; '.join(problems)}. "
            "Bake what they install into base_image (build it once with a builder that can, push it to your "
            "private registry, and unset these fields), or build with flytekit's default builder (needs buildx): "
            'PrivateRegistry(..., builder="default") or FLYTE_PRIVATE_REGISTRY_BUILDER=default'
        )


def installs_python(spec: ImageSpec) -> bool:
    """Whether the build runs pip: any Python field set, as flytekit's default always installs flytekit."""
    return any(getattr(spec, name, None) for name in PYTHON_FIELDS)


def base_image(spec: ImageSpec) -> str:
    """The FROM image: ``base_image``, else a Python image when something is installed, else ``scratch``."""
    if isinstance(spec.base_image, ImageSpec):
        return spec.base_image.image_name()
    if spec.base_image:
        return spec.base_image
    if installs_python(spec) or spec.apt_packages:
        version = spec.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
        return f"python:{version}-slim-bookworm"
    return "scratch"


def package_index(spec: ImageSpec) -> str:
    """The index pip will install from: ``pip_index``, ``PIP_INDEX_URL`` in ``env``, or PyPI."""
    return spec.pip_index or (spec.env or {}).get("PIP_INDEX_URL") or DEFAULT_INDEX


def _requirement_lines(spec: ImageSpec) -> list[str]:
    """flytekit's ``requirements_uv.txt``: the requirements file's lines, ``packages``, then flytekit if absent."""
    from flytekit.image_spec.default_builder import _is_flytekit, get_flytekit_for_pypi

    lines: list[str] = []
    if spec.requirements:
        lines.extend(line.strip() for line in Path(spec.requirements).read_text().splitlines())
    lines.extend(spec.packages or [])
    if not any(_is_flytekit(line) for line in lines):
        lines.append(get_flytekit_for_pypi())
    return lines


def _fail_unless(test: str, message: str) -> str:
    return f"RUN {test} || {{ echo {shlex.quote('flyte-private-registry docker-cli: ' + message)} >&2; exit 1; }}"


def _python_lines(spec: ImageSpec, base: str, context: Path) -> list[str]:
    """Install the requirements with the base image's Python (or a venv from ``python_exec``) and plain pip."""
    if not installs_python(spec):
        return []
    python = spec.python_exec or "python3"
    lines = [
        _fail_unless(
            f"command -v {shlex.quote(python)} >/dev/null 2>&1",
            f"base image {base} has no {python} on PATH; packages are installed with the Python of the base image. "
            "Use a base image with Python 3 and pip (or leave base_image unset), or set python_exec.",
        )
    ]
    if spec.python_version and (spec.base_image or spec.python_exec):
        wanted = ".".join(str(spec.python_version).split(".")[:2])
        check = (
            'import sys; v = "%d.%d" % sys.version_info[:2]; '
            f'sys.exit(0 if v == "{wanted}" else "flyte-private-registry docker-cli: base image {base} has Python " '
            f'+ v + ", the ImageSpec asks for python_version {wanted}: use a base image with that Python or '
            'unset python_version")'
        )
        lines.append(f"RUN {shlex.quote(python)} -c {shlex.quote(check)}")
    if spec.python_exec:  # as flytekit: a venv that still sees the base image's packages
        lines.append(f"RUN {shlex.quote(python)} -m venv --system-site-packages {VENV}")
        lines.append(f'ENV PATH="{VENV}/bin:$PATH"')
        python = f"{VENV}/bin/python"
    (context / _REQUIREMENTS).write_text("\n".join(_requirement_lines(spec)) + "\n")
    args = ["--no-cache-dir", "--disable-pip-version-check"]
    if spec.pip_index:
        args += ["--index-url", shlex.quote(spec.pip_index)]
    for url in spec.pip_extra_index_url or []:
        args += ["--extra-index-url", shlex.quote(url)]
    if spec.pip_extra_args:
        args.append(spec.pip_extra_args)  # a shell fragment, as flytekit appends it
    in_image = f"{_IMAGE_REQUIREMENTS_DIR}/{_REQUIREMENTS}"
    lines.append(_instruction("COPY", _REQUIREMENTS, in_image))
    lines.append(
        f"RUN {shlex.quote(python)} -m pip install {' '.join(args)} --requirement {in_image} "
        f"&& rm -rf {_IMAGE_REQUIREMENTS_DIR}"
    )
    return lines


def _apt_lines(spec: ImageSpec) -> list[str]:
    if not spec.apt_packages:
        return []
    packages = " ".join(shlex.quote(p) for p in spec.apt_packages)
    return [
        f"RUN apt-get update && apt-get install -y --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
    ]


def _copy_source_files(spec: ImageSpec, target: Path) -> None:
    """The files flytekit's default builder copies for ``source_root``/``source_copy_mode``, by its own helpers."""
    from flytekit.tools.ignore import DockerIgnore, GitIgnore, IgnoreGroup, StandardIgnore
    from flytekit.tools.script_mode import ls_files

    root = str(spec.source_root)
    ignore = IgnoreGroup(root, [GitIgnore, DockerIgnore, StandardIgnore])
    files, _ = ls_files(root, spec.source_copy_mode, deref_symlinks=False, ignore_group=ignore)
    target.mkdir(parents=True, exist_ok=True)
    for file in files:
        destination = target / os.path.relpath(file, start=root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, destination)


def _copies_source(spec: ImageSpec) -> bool:
    from flytekit.constants import CopyFileDetection

    if spec.source_copy_mode is None or spec.source_copy_mode == CopyFileDetection.NO_COPY:
        return False
    if not spec.source_root:
        raise ValueError(f"Field source_root for {spec} must be set when copy is set")
    return True


def _instruction(keyword: str, *args: str) -> str:
    return f"{keyword} {json.dumps(list(args))}"


def create_docker_context(spec: ImageSpec, context: Path) -> None:
    """Write the build context (Dockerfile and files) for ``spec`` into ``context``.

    The instructions come in flytekit's order: apt, env, the Python install, entrypoint, source
    files, ``copy`` entries, commands, then ``WORKDIR /root`` and ``_F_IMG_ID`` last. Copied files
    end up where flytekit's default builder (``create_docker_context`` in
    ``flytekit.image_spec.default_builder``) puts them: the source files under ``/root`` by their path
    relative to ``source_root``, then each ``copy`` entry, a path relative to the working directory,
    at ``/root/<path>``: a file into ``/root/<its parent>/``, a directory's contents into
    ``/root/<path>/``. They are kept in separate context folders so that a ``copy`` entry can never
    collide with the source files or the Dockerfile. Files are owned by root and the image keeps
    the base image's user (this builder creates no ``flytekit`` user).
    """
    check_supported(spec)
    base = base_image(spec)
    lines = [f"FROM {base}", *_apt_lines(spec)]
    env = {"PYTHONPATH": "/root", **(spec.env or {})}  # flytekit's default, which the user's env may override
    lines.extend(f"ENV {key}={json.dumps(str(value), ensure_ascii=False)}" for key, value in env.items())
    lines.extend(_python_lines(spec, base, context))
    if spec.entrypoint is not None:  # [] resets the base image's entrypoint, as in flytekit
        lines.append(_instruction("ENTRYPOINT", *spec.entrypoint))
    if _copies_source(spec):
        _copy_source_files(spec, context / _SOURCE_DIR)
        lines.append(_instruction("COPY", _SOURCE_DIR, "/root"))
    for entry in spec.copy or []:
        source = Path(entry)
        if source.is_absolute() or ".." in source.parts:
            raise ValueError(f"Absolute paths or paths with '..' are not allowed in COPY command: {entry!r}")
        staged = context / _COPY_DIR / source
        staged.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, staged, dirs_exist_ok=True)
            destination = f"/root/{source.as_posix()}/"
        else:
            shutil.copy(source, staged)
            destination = f"/root/{source.parent.as_posix()}/"
        lines.append(_instruction("COPY", staged.relative_to(context).as_posix(), destination))
    if spec.commands:  # one shell, as in flytekit: `cd` and exports carry over to the next command
        lines.append(f"RUN {' && '.join(spec.commands)}")
    lines.append("WORKDIR /root")
    lines.append(f"ENV {_F_IMG_ID}={json.dumps(spec.id)}")  # last, as flytekit: ImageSpec.is_container() reads it
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")


def _without_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def index_unreachable(url: str) -> str | None:
    """Why pip could not reach ``url`` from here (a TCP connect, through the proxy pip would use), or None."""
    import socket
    import urllib.request  # not at import time: the plugin module loads on every `import flytekit`

    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:  # a local path or file:// index: nothing to connect to
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target, via = (parts.hostname, port), ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        target = (proxied.hostname or "", proxied.port or 80)
        via = f" through proxy {target[0]}:{target[1]}"
    try:
        socket.create_connection(target, timeout=_PROBE_TIMEOUT_SECONDS).close()
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        return f"cannot connect to {parts.hostname}:{port}{via} ({reason})"
    return None


class DockerCLIBuilder(ImageSpecBuilder):
    builder_type = BUILDER_NAME

    def validate(self, image_spec: ImageSpec) -> None:
        """Refuse what plain docker build cannot do; the private-registry wrapper calls this before any push prep."""
        check_supported(image_spec)

    def missing_requirements(self, image_spec: ImageSpec) -> list[Missing]:
        """What this machine lacks for this build: the docker CLI, a daemon, and the package index if pip runs."""
        from ._requirements import Missing, docker_cli, docker_daemon

        missing = docker_cli()
        problems = [missing] if missing else [m for m in (docker_daemon(),) if m is not None]
        if installs_python(image_spec):
            index = package_index(image_spec)
            reason = index_unreachable(index)
            if reason is not None:
                problems.append(
                    Missing(
                        f"a reachable Python package index ({_without_userinfo(index)}): the docker-cli builder "
                        "installs packages/requirements (and flytekit) with pip while building",
                        reason,
                        (
                            "bake the packages into a base_image where the index is reachable (build it once, push "
                            "it to your private registry) and unset packages/requirements here",
                            "point pip_index at a mirror this machine and its docker daemon can reach",
                        ),
                    )
                )
        return problems

    def build_image(self, image_spec: ImageSpec) -> str:
        check_supported(image_spec)  # before anything is copied or run
        if "registry_config" in set_fields(image_spec):
            import warnings

            warnings.warn(
                f"the docker-cli builder ignores registry_config ({IGNORED['registry_config']})",
                UserWarning,
                stacklevel=2,
            )
        image = image_spec.image_name()
        initial_tag = image_spec.tag
        with tempfile.TemporaryDirectory(prefix="fpr-context-") as tmp:
            create_docker_context(image_spec, Path(tmp))
            # As flytekit's default builder: the files must not have changed between tagging and copying.
            del image_spec.tag
            if image_spec.tag != initial_tag:
                raise ValueError(
                    f"Hash-based image tag changed from {initial_tag} to {image_spec.tag} while creating the "
                    "context: the copied files changed meanwhile, so the image would not match its tag."
                )
            build = ["docker", "build", "--tag", image]
            if image_spec.platform:
                build += ["--platform", image_spec.platform]
            commands = [[*build, tmp]]
            if image_spec.registry and os.getenv("FLYTE_PUSH_IMAGE_SPEC", "True").lower() in ("true", "1"):
                commands.append(["docker", "push", image])
            for command in commands:
                click.secho(f"Run command: {' '.join(command)} ", fg="blue")
                subprocess.run(command, check=True)
        return image
