"""Push Flyte ImageSpec images to private registries and let the cluster pull them.

Public names load lazily: this package is imported on every ``import flytekit`` (through the
``flytekit.plugins`` entry point), so importing it must cost next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "PrivateRegistry": "._declaration",
    "Credential": ".credentials",
    "Keychain": ".credentials",
    "Miss": ".credentials",
    "Resolution": ".credentials",
    "RegistryClient": ".distribution",
    "RetryPolicy": ".distribution",
    "lookup": "._lookup",
    "explain": "._lookup",
    "check": "._check",
    "CheckReport": "._check",
    "FlytePrivateRegistryError": "._errors",
    "ConfigurationError": "._errors",
    "MissingEnvironmentVariable": "._errors",
    "CredentialsError": "._errors",
    "RegistryError": "._errors",
    "AuthenticationError": "._errors",
    "AuthorizationError": "._errors",
    "RegistryUnavailable": "._errors",
    "PushVerificationError": "._errors",
    "MissingExtra": "._errors",
    "ClusterError": "._errors",
    "PreflightError": "._errors",
    "DEFAULT_DOMAINS": "._declaration",
    "ClusterObjects": ".pull._objects",
    "cluster_objects": ".pull._objects",
    "flyte_namespaces": ".pull._objects",
    "Applied": ".pull._apply",
    "CronJobRefresher": ".pull._refresher",
    "ExternalSecretsRefresher": ".pull._refresher",
    "PreflightReport": ".pull._preflight",
    "PullCheck": ".pull._preflight",
    "preflight": ".pull._preflight",
    "PodDiagnosis": ".pull._diagnose",
    "diagnose_pod": ".pull._diagnose",
}

__all__ = [
    "DEFAULT_DOMAINS",
    "Applied",
    "AuthenticationError",
    "AuthorizationError",
    "CheckReport",
    "ClusterError",
    "ClusterObjects",
    "ConfigurationError",
    "Credential",
    "CredentialsError",
    "CronJobRefresher",
    "ExternalSecretsRefresher",
    "FlytePrivateRegistryError",
    "Keychain",
    "Miss",
    "MissingEnvironmentVariable",
    "MissingExtra",
    "PodDiagnosis",
    "PreflightError",
    "PreflightReport",
    "PrivateRegistry",
    "PullCheck",
    "PushVerificationError",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailable",
    "Resolution",
    "RetryPolicy",
    "check",
    "cluster_objects",
    "diagnose_pod",
    "explain",
    "flyte_namespaces",
    "lookup",
    "preflight",
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
    from ._check import CheckReport, check
    from ._declaration import DEFAULT_DOMAINS, PrivateRegistry
    from ._errors import (
        AuthenticationError,
        AuthorizationError,
        ClusterError,
        ConfigurationError,
        CredentialsError,
        FlytePrivateRegistryError,
        MissingEnvironmentVariable,
        MissingExtra,
        PreflightError,
        PushVerificationError,
        RegistryError,
        RegistryUnavailable,
    )
    from ._lookup import explain, lookup
    from .credentials import Credential, Keychain, Miss, Resolution
    from .distribution import RegistryClient, RetryPolicy
    from .pull._apply import Applied
    from .pull._diagnose import PodDiagnosis, diagnose_pod
    from .pull._objects import ClusterObjects, cluster_objects, flyte_namespaces
    from .pull._preflight import PreflightReport, PullCheck, preflight
    from .pull._refresher import CronJobRefresher, ExternalSecretsRefresher
