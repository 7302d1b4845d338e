"""Credential sources. Each answers ``resolve(resource) -> Credential | Miss``; :func:`resolve` chains them.

Write your own by implementing :class:`Keychain` (a ``name`` and a ``resolve`` method) and pass
it to ``PrivateRegistry(..., keychains=[...])``.
"""

from ._base import Attempt, Credential, Keychain, Miss, Resolution, Secret, resolve
from ._docker_config import DockerConfigKeychain
from ._static import EnvKeychain, StaticKeychain

__all__ = [
    "Attempt",
    "Credential",
    "DockerConfigKeychain",
    "EnvKeychain",
    "Keychain",
    "Miss",
    "Resolution",
    "Secret",
    "StaticKeychain",
    "resolve",
]
