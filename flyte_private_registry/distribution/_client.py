"""A small client for the registry HTTP API v2: challenge, token, manifest HEAD.

The 401 -> challenge -> token -> retry dance lives in :class:`_RegistryAuth.auth_flow` and reads
top to bottom, httpx style. Tokens are cached per scope, so a sweep over 100 tags of one
repository costs one token fetch. Answers are exists / missing / an error: never "assume".
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .._errors import AuthenticationError, AuthorizationError, RegistryError
from .._reference import api_host, is_loopback
from ..credentials import Credential
from ..credentials._base import encode_basic

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_USER_AGENT = "flyte-private-registry"
_TOKEN_MARGIN_SECONDS = 10.0
_DEFAULT_TOKEN_SECONDS = 60.0
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags|referrers)(?:/.*)?$")
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')

#: Turns (action, status) into a provider-specific sentence, e.g. GHCR's ``write:packages``.
RefusalHint = Callable[[str, int], "str | None"]


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header (scheme lower-cased; ``none`` when the API is open)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, header: str | None) -> Challenge:
        if not header:
            return cls("none")
        scheme, _, rest = header.strip().partition(" ")
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)
        }
        return cls(scheme.lower(), params)


@dataclass(frozen=True)
class LoginResult:
    """What a credential check proved: the auth scheme, and the actions granted where knowable."""

    scheme: str
    granted: frozenset[str] | None


def _scope(repository: str, actions: Iterable[str]) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def _granted_actions(token: str, repository: str) -> frozenset[str] | None:
    """Actions a JWT grants on ``repository``; ``None`` for opaque tokens (cannot tell)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return None
    access = claims.get("access") if isinstance(claims, dict) else None
    if not isinstance(access, list):
        return None
    actions: set[str] = set()
    for entry in access:
        if isinstance(entry, dict) and entry.get("type") == "repository" and entry.get("name") == repository:
            actions.update(a for a in entry.get("actions") or [] if isinstance(a, str))
    return frozenset(actions)


def _server_message(response: httpx.Response) -> str:
    """The registry's own error code/message, short; never a header or a token."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"{errors[0].get('code', '')}: {errors[0].get('message', '')}"[:200]
        for key in ("details", "message", "error"):
            if isinstance(payload.get(key), str):
                return payload[key][:200]
    return ""


#: Where docker itself looks for per-registry CAs (``<host[:port]>/*.crt``): trust what docker trusts.
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


def trust_for(host: str, ca_file: Path | str | None = None) -> ssl.SSLContext:
    """TLS trust like docker's: the system store, certifi, docker's ``certs.d`` for the host, ``ca_file``.

    httpx alone would trust only certifi, so a registry on an internal CA that docker pushes to
    would fail every existence check.
    """
    context = ssl.create_default_context()  # system store; honours SSL_CERT_FILE / SSL_CERT_DIR
    try:
        import certifi

        context.load_verify_locations(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        pass
    for extra in sorted((DOCKER_CERTS_DIR / host).glob("*.crt")):
        context.load_verify_locations(cafile=str(extra))
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class _RegistryAuth(httpx.Auth):
    """Basic or Bearer auth, chosen by the registry's challenge, with tokens cached per scope."""

    requires_response_body = True

    def __init__(self, client: RegistryClient) -> None:
        self._client = client

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        client = self._client
        scope = client.scope_for(request.url.path)
        client.authorize(request, scope)
        response = yield request
        if response.status_code != 401:
            return
        challenge = Challenge.parse(response.headers.get("www-authenticate"))
        if challenge.params.get("error") == "insufficient_scope":
            return
        if challenge.scheme == "basic":
            if client.credential is None or request.headers.get("authorization", "").startswith("Basic"):
                return  # nothing to offer, or already refused
            client.scheme = "basic"
            client.authorize(request, scope)
            yield request
        elif challenge.scheme == "bearer":
            client.scheme = "bearer"
            client.challenge = challenge
            token_response = yield client.token_request(challenge, scope)
            client.accept_token(token_response, scope)
            client.authorize(request, scope)
            yield request


class RegistryClient:
    """Talks to one registry host with one credential.

    ``actions`` are asked for in every token (``("pull", "push")`` during a build) so a single
    token serves the pre-flight, the existence check and the post-push verification.
    """

    def __init__(
        self,
        host: str,
        credential: Credential | None = None,
        *,
        insecure: bool = False,
        ca_file: Path | str | None = None,
        timeout: float = 10.0,
        actions: tuple[str, ...] = ("pull",),
        refusal_hint: RefusalHint | None = None,
    ) -> None:
        self.host = host
        self.api_host = api_host(host)
        self.credential = credential
        self.actions = actions
        self.scheme: str | None = None  # "basic" | "bearer" | "none", learnt from the challenge
        self.challenge: Challenge | None = None
        # A CA file means the user expects TLS: verify it and never fall back to plain HTTP.
        self._insecure = (insecure or is_loopback(host)) and ca_file is None
        self._refusal_hint = refusal_hint
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._base_url: str | None = None
        verify: ssl.SSLContext | bool = False if self._insecure else trust_for(self.api_host, ca_file)
        self._http = httpx.Client(
            auth=_RegistryAuth(self),
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
            headers={"User-Agent": _USER_AGENT},
            follow_redirects=True,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        user = self.credential.username if self.credential else None
        return f"RegistryClient(host={self.host!r}, user={user!r}, scheme={self.scheme!r})"

    # -- auth plumbing used by _RegistryAuth -------------------------------------------------
    def scope_for(self, path: str) -> str | None:
        match = _REPO_PATH.match(path)
        return _scope(match.group("name"), self.actions) if match else None

    def authorize(self, request: httpx.Request, scope: str | None) -> None:
        if self.scheme == "basic" and self.credential is not None and not self.credential.identity_token:
            basic = encode_basic(self.credential.username, self.credential.password.get_secret_value())
            request.headers["Authorization"] = f"Basic {basic}"
        elif self.scheme == "bearer":
            token = self._cached_token(scope or "")
            if token:
                request.headers["Authorization"] = f"Bearer {token}"

    def _cached_token(self, scope: str) -> str | None:
        with self._lock:
            entry = self._tokens.get(scope)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        return None

    def token_request(self, challenge: Challenge, scope: str | None) -> httpx.Request:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host} sent a Bearer challenge without a realm", host=self.host)
        params = {"service": challenge.params.get("service", "")}
        if scope:
            params["scope"] = scope
        credential = self.credential
        if credential is None:  # anonymous token, as for public repositories
            return self._http.build_request("GET", realm, params=params)
        if credential.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credential.password.get_secret_value(),
                "client_id": _USER_AGENT,
                **params,
            }
            return self._http.build_request("POST", realm, data=form)
        basic = encode_basic(credential.username, credential.password.get_secret_value())
        headers = {"Authorization": f"Basic {basic}"}
        return self._http.build_request("GET", realm, params=params, headers=headers)

    def accept_token(self, response: httpx.Response, scope: str | None) -> str:
        if response.status_code in (401, 403):
            raise self._refused(response, "log in", token_host=response.request.url.host)
        if response.status_code != 200:
            raise RegistryError(
                f"token service {response.request.url.host} for {self.host} answered HTTP "
                f"{response.status_code} {_server_message(response)}".rstrip(),
                host=self.host,
                status=response.status_code,
            )
        try:
            payload: dict[str, Any] = response.json()
        except ValueError:
            raise RegistryError(f"token service for {self.host} did not answer JSON", host=self.host) from None
        token = payload.get("token") or payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service for {self.host} answered without a token", host=self.host)
        lifetime = float(payload.get("expires_in") or _DEFAULT_TOKEN_SECONDS)
        with self._lock:
            self._tokens[scope or ""] = (token, time.monotonic() + max(lifetime - _TOKEN_MARGIN_SECONDS, 1.0))
        return token

    # -- errors ----------------------------------------------------------------------------
    def _who(self) -> str:
        if self.credential is None:
            return "anonymous access"
        return f"user {self.credential.username!r} (credentials from {self.credential.source})"

    def _scrub(self, text: str) -> str:
        if self.credential is not None:
            secret = self.credential.password.get_secret_value()
            if secret:
                text = text.replace(secret, "***")
        return text

    def _refused(self, response: httpx.Response, action: str, *, token_host: str | None = None) -> RegistryError:
        status = response.status_code
        where = f" (token service {token_host})" if token_host and token_host != self.api_host else ""
        said = _server_message(response)
        insufficient = "insufficient_scope" in response.headers.get("www-authenticate", "")
        denied = status == 403 or insufficient
        if denied:
            text = f"registry {self.host}{where} does not allow {self._who()} to {action}: HTTP {status}"
        else:
            text = f"registry {self.host}{where} refused {self._who()}: HTTP {status}"
        if said:
            text += f" ({said})"
        hint = self._refusal_hint(action, status) if self._refusal_hint else None
        text += ". " + (
            hint
            or "Check the password or token and its scopes; "
            f"`flyte-private-registry explain {self.host}` shows where the credentials come from."
        )
        error_type = AuthorizationError if denied else AuthenticationError
        return error_type(self._scrub(text), host=self.host, status=status)

    @contextmanager
    def _network(self, what: str) -> Iterator[None]:
        """Connection failures become a ``RegistryError`` naming the host that did not answer."""
        try:
            yield
        except httpx.TransportError as err:
            try:
                where = err.request.url.host
            except RuntimeError:
                where = self.api_host
            raise RegistryError(
                f"registry {self.host}: could not {what}: {where} did not answer "
                f"({type(err).__name__}: {self._scrub(str(err))[:200]})",
                host=self.host,
            ) from None

    # -- API -------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if self._base_url is None:
            self.ping()
        assert self._base_url is not None
        return self._base_url + path

    def ping(self) -> Challenge:
        """``GET /v2/`` without credentials: learns the scheme (https, or http for insecure hosts)."""
        schemes = ("https", "http") if self._insecure else ("https",)
        last: Exception | None = None
        for scheme in schemes:
            base = f"{scheme}://{self.api_host}"
            try:
                response = self._http.get(base + "/v2/", auth=None)
            except httpx.TransportError as err:
                last = err
                continue
            self._base_url = base
            if response.status_code == 401:
                challenge = Challenge.parse(response.headers.get("www-authenticate"))
            elif response.status_code == 200:
                challenge = Challenge("none")
            else:
                raise RegistryError(
                    f"{base}/v2/ answered HTTP {response.status_code}: is {self.host} a container registry?",
                    host=self.host,
                    status=response.status_code,
                )
            self.challenge = challenge
            if self.scheme is None:
                self.scheme = challenge.scheme
            return challenge
        hint = "" if self._insecure else " (for a plain-HTTP registry pass insecure=True)"
        raise RegistryError(
            f"cannot reach registry {self.host} at https://{self.api_host}/v2/: {type(last).__name__}: "
            f"{self._scrub(str(last))[:200]}{hint}",
            host=self.host,
        )

    def login(self, repository: str) -> LoginResult:
        """Prove the credential works for ``repository`` with this client's actions, before any build."""
        challenge = self.ping()
        if challenge.scheme == "none":
            return LoginResult("none", frozenset(self.actions))
        if self.credential is None:
            raise AuthenticationError(
                f"registry {self.host} requires authentication ({challenge.scheme}) and no credentials were found",
                host=self.host,
                status=401,
            )
        if challenge.scheme == "basic":
            with self._network("log in"):
                response = self._http.get(self._url("/v2/"))
            if response.status_code != 200:
                raise self._refused(response, "log in")
            return LoginResult("basic", None)
        if challenge.scheme != "bearer":
            raise RegistryError(f"registry {self.host} asks for unsupported auth {challenge.scheme!r}", host=self.host)
        scope = _scope(repository, self.actions)
        token = self._cached_token(scope)
        if token is None:
            with self._network("fetch a token"):
                response = self._http.send(self.token_request(challenge, scope), auth=None)
            token = self.accept_token(response, scope)
        granted = _granted_actions(token, repository)
        if granted is not None:
            missing = [a for a in self.actions if a not in granted]
            if missing:
                hint = self._refusal_hint(missing[0], 403) if self._refusal_hint else None
                raise AuthorizationError(
                    f"registry {self.host} authenticated {self._who()} but granted only "
                    f"{sorted(granted) or 'no access'} on {repository}, not {'/'.join(missing)}. "
                    + (hint or "Give the user push rights on that repository, or use a token that has them."),
                    host=self.host,
                    status=403,
                )
        return LoginResult("bearer", granted)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest if ``repository:reference`` exists, ``None`` if the registry says 404."""
        url = self._url(f"/v2/{repository}/manifests/{reference}")
        with self._network(f"check {repository}:{reference}"):
            response = self._http.head(url, headers={"Accept": MANIFEST_ACCEPT})
        if response.status_code == 200:
            return response.headers.get("docker-content-digest", "")
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise self._refused(response, f"pull {repository}")
        raise RegistryError(
            f"registry {self.host} answered HTTP {response.status_code} for {repository}:{reference}; "
            "cannot tell whether the image exists",
            host=self.host,
            status=response.status_code,
        )

    def exists(self, repository: str, reference: str) -> bool:
        return self.manifest_digest(repository, reference) is not None

    def manifest_digests(
        self, repository: str, references: Iterable[str], *, workers: int = 8
    ) -> dict[str, str | None]:
        """Digests for many tags of one repository: one token, then HEADs in parallel."""
        references = list(references)
        if not references:
            return {}
        first = self.manifest_digest(repository, references[0])  # fetches and caches the token
        results: dict[str, str | None] = {references[0]: first}
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            rest = references[1:]
            digests = pool.map(lambda r: self.manifest_digest(repository, r), rest)
            for ref, digest in zip(rest, digests, strict=True):
                results[ref] = digest
        return results
