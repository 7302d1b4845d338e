"""Answers by image or prefix: which declared registry covers it, and where its credentials come from."""

from __future__ import annotations

from ._catalog import CATALOG, not_declaring
from ._reference import ImageReference, InvalidReference, RegistryPrefix
from ._registry import PrivateRegistry


def lookup(target: str) -> PrivateRegistry | None:
    """The declared or configured registry covering an image reference or a registry prefix."""
    found = CATALOG.for_image(target)
    if found is None:
        try:
            prefix = RegistryPrefix.parse(target, require_host=False)
        except InvalidReference:
            return None
        found = CATALOG.match(prefix.host, prefix.path)
    return found


def registry_for(target: str) -> PrivateRegistry:
    """:func:`lookup`, or an undeclared generic registry for the target's host (for ``explain``/``check``)."""
    found = lookup(target)
    if found is not None:
        return found
    try:
        host = ImageReference.parse(target).host
    except InvalidReference:
        host = RegistryPrefix.parse(target).host
    with not_declaring():
        return PrivateRegistry(host)


def explain(target: str) -> str:
    """Which credential source answers for an image or registry, and why the others did not."""
    registry = registry_for(target)
    declared = "declared" if lookup(target) is not None else "not declared; showing the defaults for its host"
    return f"{registry.registry} ({declared}, provider {registry.provider.describe()})\n" + registry.explain()
