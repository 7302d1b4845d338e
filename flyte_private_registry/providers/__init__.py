"""Provider knowledge: which kind of registry a host is, and what that kind needs.

One module per provider (host forms plus its credential sources); none imports a cloud SDK
until a credential is asked for, so declaring a registry stays cheap. (The plugin loaded by
``import flytekit`` imports none of this.)
"""

from __future__ import annotations

from ._acr import AcrProvider
from ._base import GenericProvider, Provider
from ._dockerhub import DockerHubProvider
from ._ecr import EcrProvider
from ._gar import GarProvider
from ._github import GhcrProvider
from ._gitlab import GitLabProvider

#: kind -> provider class; config files name providers by these keys.
PROVIDERS: dict[str, type[Provider]] = {GenericProvider.kind: GenericProvider}


def register_provider(cls: type[Provider]) -> type[Provider]:
    PROVIDERS[cls.kind] = cls
    return cls


for _cls in (EcrProvider, GhcrProvider, GitLabProvider, DockerHubProvider, GarProvider, AcrProvider):
    register_provider(_cls)


def provider_for_host(host: str) -> Provider:
    """The provider a bare prefix implies (``ghcr.io`` is GitHub, ...); generic when unknown."""
    for cls in PROVIDERS.values():
        infer = getattr(cls, "from_host", None)
        if infer is not None:
            provider = infer(host)
            if provider is not None:
                return provider
    return GenericProvider()


__all__ = [
    "PROVIDERS",
    "AcrProvider",
    "DockerHubProvider",
    "EcrProvider",
    "GarProvider",
    "GenericProvider",
    "GhcrProvider",
    "GitLabProvider",
    "Provider",
    "provider_for_host",
    "register_provider",
]
