"""``docker-cli``: a minimal ImageSpec builder for offline and air-gapped machines.

flytekit's default builder needs buildx, BuildKit and internet access (it pulls uv, a
Dockerfile frontend and its base image). This one runs what flytekit's default runs, through
``subprocess`` with the inherited environment, minus what needs the internet: ``docker build``
of ``base_image`` (or ``scratch``) plus ``env``, the source files selected by ``source_root`` and
``source_copy_mode``, ``copy``, ``commands`` and ``entrypoint``, then ``docker push``. Files land
where flytekit's default builder puts them: source files under ``/root`` by their path relative
to ``source_root``, each ``copy`` entry at ``/root/<path as given>`` (relative to the working
directory of the build). Fields that need packages installed (``packages``, ``python_version``,
``apt_packages``, ...) are refused with a ``ValueError`` before any docker command runs.

It is registered with a priority below flytekit's own builders, so it is only used on request,
and it is meant to run *inside* the private-registry builder, which logs in, routes credentials
and verifies the push: ask for it with ``PrivateRegistry(..., builder="docker-cli")`` or
``FLYTE_PRIVATE_REGISTRY_BUILDER=docker-cli``. (``ImageSpec(builder="docker-cli")`` would skip
that wrapper, and with it the registry's credentials and the push verification.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flytekit.image_spec.image_spec import ImageSpec, ImageSpecBuilder

if TYPE_CHECKING:
    import dataclasses

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
#: ImageSpec fields that need packages installed (an index or mirror, BuildKit): refused, and why.
REFUSED = {
    "python_version": "installs Python with micromamba",
    "python_exec": "creates a venv from it and installs packages into it",
    "packages": "installs Python packages",
    "requirements": "installs a requirements or lock file",
    "pip_index": "configures pip installs",
    "pip_extra_index_url": "configures pip installs",
    "pip_extra_args": "configures pip installs",
    "pip_secret_mounts": "mounts BuildKit secrets for pip installs",
    "conda_packages": "installs conda packages",
    "conda_channels": "installs from conda channels",
    "apt_packages": "installs Debian packages",
    "cuda": "installs CUDA",
    "cudnn": "installs cuDNN",
}
_SOURCE_DIR = "source"  # the context's copy of the files selected by source_root/source_copy_mode
_COPY_DIR = "copy"  # the context's copies of `copy` entries, at their paths as given


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
    """Raise ``ValueError`` naming every set field this builder cannot honour offline, and the alternatives."""
    names = set_fields(spec)
    refused = [f"{name} ({REFUSED[name]})" for name in names if name in REFUSED]
    unknown = [name for name in names if name not in REFUSED and name not in HONOURED and name not in IGNORED]
    problems = []
    if refused:
        problems.append(f"it cannot install packages offline, so it cannot honour {', '.join(refused)}")
    if unknown:
        problems.append(f"it does not know the ImageSpec field(s) {', '.join(unknown)}, so it cannot honour them")
    if problems:
        raise ValueError(
            f"the docker-cli builder cannot build ImageSpec {spec.name!r}: {'; '.join(problems)}. "
            "Bake what they install into base_image (build it once where the internet is available, push it "
            "to your private registry, and unset these fields), or build with flytekit's default builder "
            '(needs buildx and internet access): PrivateRegistry(..., builder="default") or '
            "FLYTE_PRIVATE_REGISTRY_BUILDER=default"
        )


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

    Copied files end up where flytekit's default builder (``create_docker_context`` in
    ``flytekit.image_spec.default_builder``) puts them: the source files under ``/root`` by
    their path relative to ``source_root``, then each ``copy`` entry, a path relative to the
    working directory, at ``/root/<path>``: a file into ``/root/<its parent>/``, a directory's
    contents into ``/root/<path>/``. They are kept in separate context folders so that a ``copy``
    entry can never collide with the source files or the Dockerfile. Files are owned by root (this
    builder creates no ``flytekit`` user).
    """
    check_supported(spec)
    base = spec.base_image.image_name() if isinstance(spec.base_image, ImageSpec) else spec.base_image
    lines = [f"FROM {base or 'scratch'}"]
    lines.extend(f"ENV {key}={json.dumps(str(value), ensure_ascii=False)}" for key, value in (spec.env or {}).items())
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
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")


class DockerCLIBuilder(ImageSpecBuilder):
    builder_type = BUILDER_NAME

    def validate(self, image_spec: ImageSpec) -> None:
        """Refuse what cannot be built offline; the private-registry wrapper calls this before any push prep."""
        check_supported(image_spec)

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
