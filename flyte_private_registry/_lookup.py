"""Answers by image or prefix: which declared registry covers it, and where its credentials come from."""

from __future__ import annotations

from ._catalog import CATALOG, not_declaring
from ._reference import ImageReference, InvalidReference, RegistryPrefix, looks_like_host
from ._registry import PrivateRegistry


def split_target(target: str) -> tuple[str, str]:
    """(host, repository) of an image reference, a registry prefix or a bare ``host[:port]``."""
    text = target.strip().rstrip("/")
    if "/" not in text and looks_like_host(text.lower()):
        return RegistryPrefix.parse(text).host, ""
    try:
        ref = ImageReference.parse(text)
        return ref.host, ref.repository
    except InvalidReference:
        prefix = RegistryPrefix.parse(text, require_host=False)
        return prefix.host, prefix.path


def lookup(target: str) -> PrivateRegistry | None:
    """The declared or configured registry covering an image reference or a registry prefix."""
    try:
        host, repository = split_target(target)
    except InvalidReference:
        return None
    return CATALOG.match(host, repository)


def registry_for(target: str) -> PrivateRegistry:
    """:func:`lookup`, or an undeclared generic registry for the target's host (for ``explain``/``check``)."""
    found = lookup(target)
    if found is not None:
        return found
    host, _ = split_target(target)
    with not_declaring():
        return PrivateRegistry(host)


def explain(target: str) -> str:
    """Which credential source answers for an image or registry, and why the others did not."""
    registry = registry_for(target)
    declared = "declared" if lookup(target) is not None else "not declared; showing the defaults for its host"
    return f"{registry.registry} ({declared}, provider {registry.provider.describe()})\n" + registry.explain()
