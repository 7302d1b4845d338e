"""How kubelet picks pull credentials for an image, so the pre-flight predicts what a node will do.

A port of ``pkg/credentialprovider/keyring.go`` (``BasicDockerKeyring.Add`` and ``Lookup``):

* a key without a scheme gets ``https://``; a leading ``/v1/`` or ``/v2/`` in its path is dropped;
* a key matches when ports are equal, hosts have as many dot-separated labels, each label
  glob-matches (``*.example.com``), and the key's path is a *string* prefix of the image path
  (so ``quay.io/team`` also matches ``quay.io/teamwork/x``, as in kubelet);
* keys are tried most specific first (reverse-sorted) and every match is a candidate;
* Docker Hub images fall back to an ``index.docker.io`` key.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from .._reference import DOCKER_HUB, ImageReference, canonical_host

T = TypeVar("T")

_DEFAULT_REGISTRY_HOST = "index.docker.io"


def normalize_key(key: str) -> str | None:
    """The keyring index a docker config key becomes (``https://h/v2/`` -> ``h``); None if unparsable."""
    value = key if key.startswith(("https://", "http://")) else "https://" + key
    try:
        parsed = urlsplit(value)
        host = parsed.netloc
    except ValueError:
        return None
    if not host:
        return None
    path = parsed.path
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return host + path if path and path != "/" else host


def _split(target: str) -> tuple[list[str], str, str]:
    """Host labels, port and path of a schemeless ``host[:port][/path]`` (Go ``url.Parse`` + ``SplitHostPort``)."""
    parsed = urlsplit("https://" + target)
    netloc = parsed.netloc
    port = ""
    host = netloc
    if netloc.startswith("["):
        end = netloc.find("]")
        if end > 0 and netloc[end + 1 : end + 2] == ":":
            host, port = netloc[1:end], netloc[end + 2 :]
    elif netloc.count(":") == 1:
        host, port = netloc.split(":")
    return host.split("."), port, parsed.path


def urls_match(glob: str, target: str) -> bool:
    """kubelet's ``URLsMatchStr``: does keyring index ``glob`` cover image path ``target``?"""
    glob_parts, glob_port, glob_path = _split(glob)
    target_parts, target_port, target_path = _split(target)
    if glob_port != target_port or len(glob_parts) != len(target_parts):
        return False
    if not target_path.startswith(glob_path):
        return False
    return all(fnmatch.fnmatchcase(t, g) for g, t in zip(glob_parts, target_parts, strict=True))


def repo_to_pull(image: str) -> str:
    """What kubelet looks up: the normalized name without tag or digest (``docker.io/library/busybox``)."""
    ref = ImageReference.parse(image)
    host = DOCKER_HUB if canonical_host(ref.host) == DOCKER_HUB else ref.host
    return f"{host}/{ref.repository}"


def _is_default_registry_match(image: str) -> bool:
    parts = image.split("/", 1)
    if not parts[0]:
        return False
    if len(parts) == 1 or parts[0] in ("docker.io", "index.docker.io"):
        return True
    return not any(c in parts[0] for c in ".:")


@dataclass(frozen=True)
class Match(Generic[T]):
    """A keyring entry that applies to the image: the index it was filed under and its payload."""

    index: str
    value: T


class Keyring(Generic[T]):
    """Entries filed under their normalized keys; :meth:`lookup` returns them in kubelet's order."""

    def __init__(self) -> None:
        self._entries: dict[str, list[T]] = {}

    def add(self, key: str, value: T) -> bool:
        index = normalize_key(key)
        if index is None:
            return False
        self._entries.setdefault(index, []).append(value)
        return True

    def add_all(self, items: Iterable[tuple[str, T]]) -> None:
        for key, value in items:
            self.add(key, value)

    @property
    def indexes(self) -> list[str]:
        return sorted(self._entries, reverse=True)

    def lookup(self, image: str) -> list[Match[T]]:
        """Every entry kubelet would try for ``image``, most specific first."""
        target = repo_to_pull(image)
        found = [
            Match(index, value) for index in self.indexes if urls_match(index, target) for value in self._entries[index]
        ]
        if found:
            return found
        if _is_default_registry_match(target) and _DEFAULT_REGISTRY_HOST in self._entries:
            return [Match(_DEFAULT_REGISTRY_HOST, v) for v in self._entries[_DEFAULT_REGISTRY_HOST]]
        return []
