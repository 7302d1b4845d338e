"""The ``.dockerconfigjson`` payload of a pull Secret: written the way docker and kubelet both read it.

Each entry carries ``username``, ``password`` *and* ``auth``: the docker CLI only reads ``auth``
(it overwrites the other two with what ``auth`` decodes to), kubelet reads either. Keys come
from :func:`docker_config_key`, so Docker Hub is ``https://index.docker.io/v1/`` and every other
registry is ``host[:port]``. Parsing follows kubelet (``auth`` wins over username/password).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._errors import ConfigurationError
from .._reference import docker_config_key
from ..credentials import Credential, Secret
from ..credentials._base import decode_basic, encode_basic

DOCKERCONFIGJSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCFG_TYPE = "kubernetes.io/dockercfg"
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
DOCKERCFG_KEY = ".dockercfg"


@dataclass(frozen=True)
class AuthEntry:
    """One ``auths`` entry as kubelet sees it: the key as written and the decoded user/password."""

    key: str
    username: str
    password: Secret = field(repr=False)


def build(credentials: Mapping[str, Credential]) -> bytes:
    """``{"auths": {...}}`` for ``host -> credential`` (hosts as in image references).

    A refresh token (docker's ``identitytoken``) is refused: kubelet cannot exchange it, so a
    Secret holding one would only ever pull anonymously.
    """
    auths: dict[str, dict[str, str]] = {}
    for host, credential in sorted(credentials.items()):
        if credential.identity_token:
            raise ConfigurationError(
                f"the credential for {host} ({credential.source}) is an OAuth2 refresh token, which kubelet "
                "cannot use. Give the registry a read-only user and token (pull_username= and "
                "pull_password_env=) for the cluster."
            )
        password = credential.password.get_secret_value()
        auths[docker_config_key(host)] = {
            "username": credential.username,
            "password": password,
            "auth": encode_basic(credential.username, password),
        }
    return json.dumps({"auths": auths}, indent=None, separators=(",", ":"), sort_keys=True).encode()


def _entry(key: str, raw: object) -> AuthEntry | None:
    if not isinstance(raw, dict):
        return None
    username = raw.get("username") or ""
    password = raw.get("password") or ""
    auth = raw.get("auth")
    if isinstance(auth, str) and auth:
        decoded = decode_basic(auth)
        if decoded is None:
            return None  # kubelet rejects the whole file; the pre-flight reports "no usable entry"
        username, password = decoded
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    return AuthEntry(key, username, Secret(password))


def parse(payload: bytes | str, *, legacy: bool = False) -> list[AuthEntry]:
    """Entries of a ``.dockerconfigjson`` (``{"auths": ...}``) or, with ``legacy``, a ``.dockercfg`` map.

    Raises ``ValueError`` when the payload is not JSON of that shape (kubelet ignores such a Secret).
    """
    document = json.loads(payload)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    auths = document if legacy else document.get("auths")
    if not isinstance(auths, dict):
        raise ValueError("no 'auths' object")
    entries = [_entry(key, raw) for key, raw in auths.items()]
    return [entry for entry in entries if entry is not None]
