"""The registry HTTP API client (OCI distribution v2): challenge, Basic/Bearer login, existence checks.

Core: the push path, ``check``, the pull-side pre-flight and the CLI all talk to registries
through this one client, so every registry answer is read (and scrubbed) in one place. Names are
loaded on first use: the quick path (``_quick``, stdlib only) must not pay for importing httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import RegistryClient
    from ._retry import RetryPolicy

__all__ = ["RegistryClient", "RetryPolicy"]


def __getattr__(name: str) -> Any:
    if name == "RegistryClient":
        from ._client import RegistryClient

        return RegistryClient
    if name == "RetryPolicy":
        from ._retry import RetryPolicy

        return RetryPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
