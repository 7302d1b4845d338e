"""Answers by image or prefix: which declared registry covers it, and where its credentials come from."""

from __future__ import annotations

from typing import Any

from ._catalog import CATALOG
from ._declaration import PrivateRegistry, not_declaring
from ._reference import ImageReference, InvalidReference, RegistryPrefix, looks_like_host


def parse_target(target: str) -> RegistryPrefix | ImageReference:
    """A CLI/API target: a registry prefix (``docker.io/acme``, ``ghcr.io/Acme``) or an image reference.

    A target with a host and no tag or digest is read as a prefix first, so Docker Hub namespaces
    are not turned into ``library/`` images and mixed-case owners are lower-cased as ImageSpec does.
    """
    text = target.strip().rstrip("/")
    if "://" in text:  # the prefix parser's "drop the scheme" message, not "malformed host 'https:'"
        return RegistryPrefix.parse(text)
    if looks_like_host(text.split("/", 1)[0].lower()):
        try:
            return RegistryPrefix.parse(text)
        except InvalidReference:
            pass
    return ImageReference.parse(text)


def split_target(target: str) -> tuple[str, str]:
    """(host, repository or prefix path) of a target; see :func:`parse_target`."""
    parsed = parse_target(target)
    return parsed.host, parsed.path if isinstance(parsed, RegistryPrefix) else parsed.repository


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


def explain_data(target: str, *, pull: bool = False) -> dict[str, Any]:
    """:func:`explain` as data (for ``--json``): the winner and every source's outcome, no secrets."""
    registry = registry_for(target)
    resolution = registry.resolve_pull(exhaustive=True) if pull else registry.resolve(exhaustive=True)
    return {
        "target": target,
        "registry": registry.registry,
        "declared": lookup(target) is not None,
        "provider": registry.provider.describe(),
        "for": "pull secret" if pull else "push",
        "source": resolution.source,
        "username": resolution.credential.username if resolution.credential else None,
        "attempts": [{"source": a.source, "outcome": a.outcome, "detail": a.detail} for a in resolution.attempts],
        "explanation": resolution.explain(),
    }


def explain(target: str, *, pull: bool = False) -> str:
    """Which credential source answers for an image or registry, and why the others did not.

    ``pull=True`` explains the credential the cluster's pull secret would get (read-only ones first,
    CI job tokens left out).
    """
    data = explain_data(target, pull=pull)
    declared = "declared" if data["declared"] else "not declared; showing the defaults for its host"
    return (
        f"{data['registry']} ({declared}, provider {data['provider']}, for the {data['for']})\n" + data["explanation"]
    )
