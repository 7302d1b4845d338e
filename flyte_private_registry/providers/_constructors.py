"""``PrivateRegistry.ecr(...)``, ``.ghcr(...)``, ...: one-line declarations per provider."""

from __future__ import annotations


class ProviderConstructors:
    """Mixed into ``PrivateRegistry``; each classmethod builds a registry with its provider."""
