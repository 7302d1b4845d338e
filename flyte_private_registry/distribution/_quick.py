"""One HEAD with what an earlier process remembered, over the stdlib: the common ``pyflyte`` case without httpx.

Why: within a token's lifetime, a second ``pyflyte`` run needs one HEAD per image and nothing
else, but importing httpx alone costs more CPU than flytekit's whole check through the docker
daemon. ``http.client`` and ``ssl`` are already loaded by ``import flytekit`` (requests), so a
check that only needs the remembered endpoint and a cached token (or Basic credentials) is
made here.

This path only ever answers "exists (digest)" or "missing" for a plain 200/404; every other
outcome (no remembered endpoint or token, a 401, a redirect, a 5xx, a timeout, a TLS error) is
:data:`UNKNOWN` and the caller asks the full :class:`~.RegistryClient`, which retries, follows,
scrubs and explains. Nothing is raised from here, so nothing here can leak a secret in a message.
"""

from __future__ import annotations

import http.client
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from .._reference import api_host, is_loopback
from ..credentials._base import encode_basic
from ._tls import DOCKER_CERTS_DIR, context_for
from ._token_cache import TokenCache, scope_atoms

if TYPE_CHECKING:
    from ..credentials import Credential

#: The answer this path cannot give: ask the full client.
UNKNOWN: Final = object()
#: Same Accept as the full client: a narrower one makes OCI images look missing.
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class QuickChecker:
    """One registry, one credential, one keep-alive connection; see the module docstring for when it answers."""

    def __init__(
        self,
        host: str,
        credential: Credential | None,
        *,
        insecure: bool = False,
        ca_file: Path | str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.api_host = api_host(host)
        self._credential = credential
        self._insecure = (insecure or is_loopback(host)) and ca_file is None
        self._ca_file = ca_file
        self._timeout = timeout
        self._cache = TokenCache(self.api_host, credential)
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def manifest_digest(self, repository: str, reference: str) -> object:
        """The digest (str), ``None`` for a 404, or :data:`UNKNOWN`."""
        endpoint = self._cache.endpoint()
        if endpoint is None:
            return UNKNOWN
        if endpoint.scheme == "bearer":
            token = self._cache.find(scope_atoms([f"repository:{repository}:pull"]))
            if token is None:
                return UNKNOWN
            authorization = f"Bearer {token.value}"
        elif self._credential is not None and not self._credential.identity_token:
            secret = self._credential.password.get_secret_value()
            authorization = f"Basic {encode_basic(self._credential.username, secret)}"
        else:
            return UNKNOWN
        headers = {"Accept": MANIFEST_ACCEPT, "Authorization": authorization, "User-Agent": "flyte-private-registry"}
        with self._lock:
            try:
                connection = self._connect(endpoint.base_url)
                if connection is None:
                    return UNKNOWN
                connection.request("HEAD", f"/v2/{repository}/manifests/{reference}", headers=headers)
                response = connection.getresponse()
                response.read()
                status, digest = response.status, (response.getheader("Docker-Content-Digest") or "").strip()
                if response.will_close:
                    self.close()
            except (OSError, http.client.HTTPException, ValueError):
                self.close()
                return UNKNOWN
        if status == 200 and _DIGEST.match(digest):
            return digest
        if status == 404:
            return None
        return UNKNOWN

    def _connect(self, base_url: str) -> http.client.HTTPConnection | None:
        if self._connection is not None:
            return self._connection
        parts = urlsplit(base_url)
        if parts.hostname is None:
            return None
        if parts.scheme == "https":
            context = context_for(DOCKER_CERTS_DIR, self.api_host, self._ca_file)
            self._connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self._timeout, context=context
            )
        elif parts.scheme == "http" and self._insecure:
            self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self._timeout)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
