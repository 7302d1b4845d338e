"""Push Flyte ImageSpec images to private registries and let the cluster pull them.

Public names load lazily: this package is imported on every ``import flytekit`` (through the
``flytekit.plugins`` entry point), so importing it must cost next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "PrivateRegistry": "._registry",
    "Credential": ".credentials",
    "Keychain": ".credentials",
    "Miss": ".credentials",
    "Resolution": ".credentials",
    "RegistryClient": "._distribution",
    "lookup": "._lookup",
    "explain": "._lookup",
    "FlytePrivateRegistryError": "._errors",
    "ConfigurationError": "._errors",
    "MissingEnvironmentVariable": "._errors",
    "CredentialsError": "._errors",
    "RegistryError": "._errors",
    "AuthenticationError": "._errors",
    "AuthorizationError": "._errors",
    "PushVerificationError": "._errors",
}

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "ConfigurationError",
    "Credential",
    "CredentialsError",
    "FlytePrivateRegistryError",
    "Keychain",
    "Miss",
    "MissingEnvironmentVariable",
    "PrivateRegistry",
    "PushVerificationError",
    "RegistryClient",
    "RegistryError",
    "Resolution",
    "explain",
    "lookup",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]


if TYPE_CHECKING:
    from ._distribution import RegistryClient
    from ._errors import (
        AuthenticationError,
        AuthorizationError,
        ConfigurationError,
        CredentialsError,
        FlytePrivateRegistryError,
        MissingEnvironmentVariable,
        PushVerificationError,
        RegistryError,
    )
    from ._lookup import explain, lookup
    from ._registry import PrivateRegistry
    from .credentials import Credential, Keychain, Miss, Resolution
