"""Docker Hub: ``DOCKERHUB_USERNAME``/``DOCKERHUB_TOKEN``, namespaces, and the ``library/`` trap.

The historical names (config key ``https://index.docker.io/v1/``, API host
``registry-1.docker.io``, the aliases) live in ``_reference``; this module only adds what a
user declaring ``PrivateRegistry.dockerhub("acme")`` needs. The v2 client follows the registry's
challenge to the token service (``auth.docker.io``), so nothing here names it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from .._errors import ConfigurationError
from .._reference import DOCKER_HUB, DOCKER_HUB_API_HOST, is_docker_hub
from ._base import Provider
from ._env import ConventionKeychain

if TYPE_CHECKING:
    from ..credentials import Credential, Keychain
    from ._base import RegistryView

#: Docker Hub's namespace for official images; nobody outside Docker can push there.
OFFICIAL_NAMESPACE = "library"
_SERVER_NAMES = frozenset({DOCKER_HUB_API_HOST, "registry.hub.docker.com"})
_NAMESPACE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z", re.ASCII)


def dockerhub_prefix(namespace: str) -> str:
    """``docker.io/<namespace>``: a Docker ID or organisation, lower-cased; never ``library``."""
    if not isinstance(namespace, str) or not namespace.strip():
        raise ConfigurationError("dockerhub() needs your Docker ID or organisation, e.g. 'acme'")
    value = namespace.strip().strip("/").lower()
    for alias in (DOCKER_HUB, "index.docker.io", "registry-1.docker.io"):
        if value.startswith(alias + "/"):
            value = value[len(alias) + 1 :]
    if "/" in value:
        raise ConfigurationError(
            f"{namespace!r}: Docker Hub repositories are <namespace>/<name>, one level deep; pass only the "
            "namespace (e.g. 'acme') and let the ImageSpec name be the repository"
        )
    if value == OFFICIAL_NAMESPACE:
        raise ConfigurationError(
            "'library' is Docker Hub's namespace for official images (docker.io/library/python); nobody can "
            "push there. Pass your Docker ID or organisation instead, e.g. dockerhub('acme')"
        )
    if not _NAMESPACE.match(value) or len(value) > 255:
        raise ConfigurationError(
            f"{namespace!r} is not a Docker Hub namespace: expected a Docker ID or organisation such as 'acme' "
            "(lower-case letters and digits)"
        )
    return f"{DOCKER_HUB}/{value}"


class DockerHubProvider(Provider):
    """docker.io: a username and a personal (or organisation) access token from the env, or docker login."""

    kind: ClassVar[str] = "dockerhub"

    @classmethod
    def from_host(cls, host: str) -> DockerHubProvider | None:
        # Docker Hub's other server names take the same credentials, though docker keys them apart.
        return cls() if is_docker_hub(host) or host.lower() in _SERVER_NAMES else None

    def keychains(self, registry: RegistryView) -> list[Keychain]:
        return [ConventionKeychain(token_env="DOCKERHUB_TOKEN", username_envs=("DOCKERHUB_USERNAME",))]

    def prepare_push(self, registry: RegistryView, repository: str, credential: Credential | None) -> None:
        """Refuse ``library/`` before building: a push there can only fail, after the whole build."""
        if repository.split("/", 1)[0] == OFFICIAL_NAMESPACE:
            raise ConfigurationError(
                f"docker.io/{repository} is in Docker Hub's official 'library/' namespace, where nobody can "
                "push (a one-part name such as 'docker.io/app' means docker.io/library/app). Put the image "
                "under your namespace: PrivateRegistry.dockerhub('acme') and ImageSpec(name='app')."
            )

    def refusal_hint(self, action: str, status: int) -> str | None:
        if action.startswith("push") or status == 403:
            return (
                "Docker Hub lets a token push only with Read & Write (or Read, Write & Delete) access, and only to "
                "its own namespace or an organisation where it has write permission; 'library/' is never writable."
            )
        return (
            "Docker Hub wants your Docker ID (not your email address) as DOCKERHUB_USERNAME and a personal "
            "access token (or an organisation access token with its organisation name) as DOCKERHUB_TOKEN."
        )
