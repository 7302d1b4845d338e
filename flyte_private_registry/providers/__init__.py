"""Provider knowledge: which kind of registry a host is, and what that kind needs.

One module per provider (host forms plus its credential sources); none imports a cloud SDK
until a credential is asked for, so declaring a registry stays cheap. (The plugin loaded by
``import flytekit`` imports none of this.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    PROVIDERS: dict[str, type[Provider]]

    from ._acr import AcrProvider
    from ._base import GenericProvider, Provider
    from ._dockerhub import DockerHubProvider
    from ._ecr import EcrProvider
    from ._gar import GarProvider
    from ._github import GhcrProvider
    from ._gitlab import GitLabProvider

# Everything here loads on first use (a provider class, PROVIDERS, provider_for_host), so importing or
# declaring a plain ``PrivateRegistry`` (and the flytekit plugin path) loads no provider module. Only
# ECR's is a pydantic model (the first one in a process costs ~35 ms CPU of pydantic imports), and
# provider_for_host loads it only for an ECR host.
_BUILTIN = {
    "Provider": "._base",
    "GenericProvider": "._base",
    "EcrProvider": "._ecr",
    "GhcrProvider": "._github",
    "GitLabProvider": "._gitlab",
    "DockerHubProvider": "._dockerhub",
    "GarProvider": "._gar",
    "AcrProvider": "._acr",
}
#: A necessary condition (on the lower-cased host, generous on purpose) for a built-in to claim a
#: host, so provider_for_host imports only the modules that might: the first check of a run pays
#: ~5 ms CPU for each module loaded. ``from_host`` decides; tests/providers/test_provider_hosts.py
#: proves the answers equal walking every provider. ECR's is exact (``_ecr_hosts``).
_MAY_CLAIM = {
    "GhcrProvider": ("ghcr",),
    "GitLabProvider": ("gitlab",),
    "DockerHubProvider": ("docker",),
    "GarProvider": ("gcr.io", "pkg.dev"),
    "AcrProvider": ("azurecr",),
}
_registered: dict[str, type[Provider]] = {}  # register_provider() calls made before the built-ins loaded


def _providers() -> dict[str, type[Provider]]:
    """kind -> provider class; config files name providers by these keys (built-ins first, in order)."""
    table = globals().get("PROVIDERS")
    if table is None:
        table = {}
        for name in _BUILTIN:
            cls = __getattr__(name)
            if name != "Provider":
                table[cls.kind] = cls
        table.update(_registered)
        globals()["PROVIDERS"] = table
    return table


def __getattr__(name: str) -> Any:
    if name == "PROVIDERS":
        return _providers()
    module = _BUILTIN.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def register_provider(cls: type[Provider]) -> type[Provider]:
    if "PROVIDERS" in globals():
        _providers()[cls.kind] = cls
    else:
        _registered[cls.kind] = cls
    return cls


def provider_for_host(host: str) -> Provider:
    """The provider a bare prefix implies (``ghcr.io`` is GitHub, ...); generic when unknown.

    ECR's module (a pydantic model, boto3 glue) is imported only for an ECR host: its host rules
    live in ``_ecr_hosts``, which ``EcrProvider.from_host`` uses too.
    """
    from ._ecr_hosts import is_ecr_host

    classes = _providers().values() if "PROVIDERS" in globals() else _classes_for(host, is_ecr_host(host))
    for cls in classes:
        infer = getattr(cls, "from_host", None)
        if infer is not None:
            provider = infer(host)
            if provider is not None:
                return provider
    return __getattr__("GenericProvider")()


def _classes_for(host: str, ecr: bool) -> list[type[Provider]]:
    """The providers that may claim ``host``, in table order, loading no other provider's module."""
    lowered = host.lower()

    def may_claim(name: str) -> bool:  # Provider and GenericProvider have no from_host: never listed
        return ecr if name == "EcrProvider" else any(part in lowered for part in _MAY_CLAIM.get(name, ()))

    return [*(__getattr__(name) for name in _BUILTIN if may_claim(name)), *_registered.values()]


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
