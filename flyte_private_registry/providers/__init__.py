"""Provider knowledge: which kind of registry a host is, and what that kind needs."""

from __future__ import annotations

from ._base import GenericProvider, Provider

#: kind -> provider class; config files name providers by these keys.
PROVIDERS: dict[str, type[Provider]] = {GenericProvider.kind: GenericProvider}


def register_provider(cls: type[Provider]) -> type[Provider]:
    PROVIDERS[cls.kind] = cls
    return cls


def provider_for_host(host: str) -> Provider:
    """The provider a bare prefix implies (``ghcr.io`` is GitHub, ...); generic when unknown."""
    for cls in PROVIDERS.values():
        infer = getattr(cls, "from_host", None)
        if infer is not None:
            provider = infer(host)
            if provider is not None:
                return provider
    return GenericProvider()


__all__ = ["PROVIDERS", "GenericProvider", "Provider", "provider_for_host", "register_provider"]
