"""The registry HTTP API client (OCI distribution v2): challenge, Basic/Bearer login, existence checks.

Core: the push path, ``check``, the pull-side pre-flight and the CLI all talk to registries
through this one client, so every registry answer is read (and scrubbed) in one place.
"""

from ._client import RegistryClient

__all__ = ["RegistryClient"]
