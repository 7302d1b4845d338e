"""``docker-cli``: a minimal ImageSpec builder for offline and air-gapped machines.

flytekit's default builder needs buildx, BuildKit and internet access (it pulls uv, a
Dockerfile frontend and its base image). This one runs what flytekit's default runs, through
``subprocess`` with the inherited environment, minus what needs the internet: ``docker build``
of ``base_image`` (or ``scratch``) plus ``copy``, ``env`` and ``commands``, then ``docker push``.
It is registered with a priority below flytekit's own builders, so it is only used on request
(``builder="docker-cli"``, ``PrivateRegistry(builder="docker-cli")`` or
``FLYTE_PRIVATE_REGISTRY_BUILDER=docker-cli``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import click
from flytekit.image_spec.image_spec import ImageSpec, ImageSpecBuilder

BUILDER_NAME = "docker-cli"
PRIORITY = -1
_NEEDS_INTERNET = (
    "packages",
    "apt_packages",
    "conda_packages",
    "requirements",
    "python_version",
    "cuda",
    "cudnn",
)


class DockerCLIBuilder(ImageSpecBuilder):
    builder_type = BUILDER_NAME

    @staticmethod
    def dockerfile(spec: ImageSpec) -> str:
        unsupported = [name for name in _NEEDS_INTERNET if getattr(spec, name, None)]
        if unsupported:
            raise ValueError(
                f"the docker-cli builder cannot install {', '.join(unsupported)} (that needs the internet); "
                "bake them into base_image or use flytekit's default builder"
            )
        base = spec.base_image if isinstance(spec.base_image, str) else None
        lines = [f"FROM {base or 'scratch'}"]
        for key, value in sorted((spec.env or {}).items()):
            lines.append(f"ENV {key}={json.dumps(value)}")
        for index, _ in enumerate(spec.copy or []):
            lines.append(f"COPY copy-{index} /root/")
        lines.extend(f"RUN {command}" for command in spec.commands or [])
        if spec.entrypoint:
            lines.append(f"ENTRYPOINT {json.dumps(spec.entrypoint)}")
        return "\n".join(lines) + "\n"

    def build_image(self, image_spec: ImageSpec) -> str:
        image = image_spec.image_name()
        with tempfile.TemporaryDirectory(prefix="fpr-context-") as tmp:
            context = Path(tmp)
            (context / "Dockerfile").write_text(self.dockerfile(image_spec))
            for index, source in enumerate(image_spec.copy or []):
                target = context / f"copy-{index}"
                if Path(source).is_dir():
                    shutil.copytree(source, target / Path(source).name)
                else:
                    target.mkdir()
                    shutil.copy2(source, target)
            commands = [["docker", "build", "--tag", image, "--platform", image_spec.platform, tmp]]
            if image_spec.registry and os.getenv("FLYTE_PUSH_IMAGE_SPEC", "True").lower() in ("true", "1"):
                commands.append(["docker", "push", image])
            for command in commands:
                click.secho(f"Run command: {' '.join(command)} ", fg="blue")
                subprocess.run(command, check=True)
        return image
