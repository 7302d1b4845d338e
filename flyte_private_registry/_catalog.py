"""The registries this process knows: declared in code, or configured in a file or env var.

Lookups take an ImageSpec's ``registry`` and image name (or a full image reference) and return
the declaration with the longest covering prefix. Code declarations override configured ones
with the same prefix. Nothing here is read until the first lookup, to keep plugin import cheap.
"""

from __future__ import annotations

import threading

from ._config import load_configured
from ._declaration import PrivateRegistry, declared, forget_declared
from ._reference import ImageReference, InvalidReference, RegistryPrefix


class Catalog:
    def __init__(self) -> None:
        self._configured: list[PrivateRegistry] | None = None
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget everything, including the cached config file (tests, long-lived processes)."""
        forget_declared()
        with self._lock:
            self._configured = None

    def _configured_registries(self) -> list[PrivateRegistry]:
        if self._configured is None:
            configured = load_configured()
            with self._lock:
                self._configured = configured
        return self._configured

    def registries(self) -> list[PrivateRegistry]:
        merged = {r.prefix: r for r in self._configured_registries()}
        merged.update(declared())
        return list(merged.values())

    def match(self, host: str, repository: str) -> PrivateRegistry | None:
        best: PrivateRegistry | None = None
        best_len = -1
        for registry in self.registries():
            prefix = registry.reference
            if prefix.covers(host, repository) and len(prefix.path) > best_len:
                best, best_len = registry, len(prefix.path)
        return best

    def for_image(self, image: str) -> PrivateRegistry | None:
        try:
            ref = ImageReference.parse(image)
        except InvalidReference:
            return None
        return self.match(ref.host, ref.repository)

    def for_spec(self, registry: str | None, name: str) -> PrivateRegistry | None:
        """The declaration for an ImageSpec's ``registry`` + ``name`` (``None``: not private)."""
        if not registry:
            return None
        try:
            prefix = RegistryPrefix.parse(registry, require_host=False)
        except InvalidReference:
            return None
        repository = f"{prefix.path}/{name}" if prefix.path else name
        return self.match(prefix.host, repository)


CATALOG = Catalog()
