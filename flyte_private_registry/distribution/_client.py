"""A small client for the registry HTTP API v2: challenge, token, manifest HEAD.

Built for registries and proxies that misbehave. Every answer is read through one primitive
(:meth:`RegistryClient._exchange`) that streams bodies under a size cap, follows a few redirects,
retries 429/502/503/504 and dropped connections under a :class:`RetryPolicy`, and stops at the
operation's wall-clock deadline (enforced on every socket read, so a server dripping a byte a
second cannot hold a call). Only the library's errors leave, each scrubbed of the password, its
Basic form and any token. The 401 -> challenge -> token -> retry dance is
:meth:`RegistryClient._request` and reads top to bottom. Tokens are cached per scope, so a sweep
over 100 tags of one repository costs one token fetch. Answers are exists / missing / an error:
never "assume".
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpcore
import httpx

from .._errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    FlytePrivateRegistryError,
    RegistryError,
    RegistryUnavailable,
)
from .._reference import api_host, is_loopback
from ..credentials import Credential
from ..credentials._base import encode_basic
from ._auth import (
    BLOB_JSON_CAP,
    ERROR_BODY_CAP,
    MANIFEST_BODY_CAP,
    TOKEN_BODY_CAP,
    Challenge,
    Manifest,
    Realm,
    content_matches,
    covered,
    granted_actions,
    json_object,
    not_a_url,
    parse_token_response,
    read_challenge,
    read_manifest,
    scope_batches,
    token_realm,
)
from ._retry import RETRY_STATUSES, Deadline, RetryPolicy, parse_retry_after
from ._spec import DIGEST, MANIFEST_ACCEPT
from ._tls import DOCKER_CERTS_DIR, context_for
from ._token_cache import TokenCache, repository_scope, scope_atoms

_USER_AGENT = "flyte-private-registry"
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags|referrers)(?:/.*)?$")
#: Anything that looks like a credential in server text, even one this client never sent.
_AUTH_VALUE = re.compile(r"(?i)\b(basic|bearer)(\s+)[A-Za-z0-9._~+/=-]{16,}")
#: Network failures worth another try; a refused connection, DNS or TLS failure is not.
_RETRYABLE = (httpx.TimeoutException, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)

#: Turns (action, status) into a provider-specific sentence, e.g. GHCR's ``write:packages``.
RefusalHint = Callable[[str, int], "str | None"]


# -- parsing (pure, property-tested) -----------------------------------------------------------
def _server_message(body: bytes, content_type: str = "") -> str:
    """The registry's own error code/message, short; the caller scrubs it."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        if content_type.startswith("text/plain"):
            return " ".join(body[:200].decode("utf-8", "replace").split())
        return ""
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"{errors[0].get('code', '')}: {errors[0].get('message', '')}"[:200]
        for key in ("details", "message", "error"):
            if isinstance(payload.get(key), str):
                return payload[key][:200]
    return ""


# -- TLS ---------------------------------------------------------------------------------------


def trust_for(host: str, ca_file: Path | str | None = None) -> ssl.SSLContext:
    """TLS trust like docker's: the system store, docker's ``certs.d`` for the host, and ``ca_file``.

    httpx alone would trust only certifi, so a registry on an internal CA that docker pushes to
    would fail every existence check. One context per trust (certs.d files, ``ca_file``) per
    process: building one costs 40-80 ms when the system bundle is parsed, and a ``pyflyte`` run
    talks to the same registries again and again.
    """
    return context_for(DOCKER_CERTS_DIR, host, ca_file)


# -- the wall-clock deadline, enforced on every socket operation --------------------------------
_local = threading.local()


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """Shrink a socket timeout to what is left of this thread's deadline (httpx's are per read)."""
    at = getattr(_local, "deadline", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the operation's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, bounded, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _install_deadlines(client: httpx.Client) -> None:
    """Route the client's sockets through :class:`_DeadlineBackend` (env proxies included).

    httpx has no public hook for the network backend; if its internals move, the per-chunk
    deadline check in :meth:`RegistryClient._read` still bounds body reads.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


class _Expired(Exception):
    """An attempt ran past its share of the deadline (raised between chunks of a dripping body)."""


@dataclass
class _Unreachable(Exception):
    """Transport failure after the retries: mapped to :class:`RegistryUnavailable` by the caller."""

    url: str
    cause: Exception
    attempts: int
    elapsed: float


@dataclass(frozen=True)
class _Answer:
    """A response, fully read (up to a cap) and closed; nothing streams past the call that made it."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL
    attempts: int = 1
    elapsed: float = 0.0
    truncated: bool = False
    undecodable: bool = False


@dataclass(frozen=True)
class LoginResult:
    """What a credential check proved: the auth scheme, and the actions granted where knowable."""

    scheme: str
    granted: frozenset[str] | None


class _CachedAuth(httpx.Auth):
    """Adds the cached Basic/Bearer header to ad-hoc requests on ``client._http`` (uploads in tests).

    The client's own calls set headers themselves and never read a body through httpx's auth.
    """

    def __init__(self, client: RegistryClient) -> None:
        self._client = client

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        match = _REPO_PATH.match(request.url.path)
        scope = repository_scope(match.group("name"), self._client.actions) if match else None
        self._client.authorize(request.headers, scope)
        yield request


class RegistryClient:
    """Talks to one registry host with one credential.

    ``actions`` are asked for in every token (``("pull", "push")`` during a build) so a single
    token serves the pre-flight, the existence check and the post-push verification. ``timeout``
    bounds one HTTP attempt (wall clock); ``retry`` bounds the attempts and each operation.
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
        retry: RetryPolicy | None = None,
        explain_command: Callable[[], str] | None = None,
    ) -> None:
        self.host = host
        self.api_host = api_host(host)
        self.credential = credential
        self.actions = actions
        self.retry = retry or RetryPolicy()
        self.scheme: str | None = None  # "basic" | "bearer" | "none", learnt from the challenge
        self.challenge: Challenge | None = None
        self._timeout = max(timeout, 0.1)
        # A CA file means the user expects TLS: verify it and never fall back to plain HTTP.
        self._insecure = (insecure or is_loopback(host)) and ca_file is None
        # Only a declaration may let credentials travel in clear text to a token service.
        self._declared_insecure = insecure
        self._refusal_hint = refusal_hint
        # the command a refusal points to: a declaration's own (its prefix, ``-m`` for code), else the host's
        self._explain_command = explain_command or (lambda: f"flyte-private-registry explain {host}")
        self._lock = threading.Lock()
        self._base_url: str | None = None
        # tokens and the /v2/ challenge, shared with later processes through the disk cache
        self._cache = TokenCache(self.api_host, credential)
        self._endpoint_from_cache = False
        self._secrets: set[str] = set()
        if credential is not None:
            self._remember_secret(credential.password.get_secret_value(), user=credential.username)
        try:
            verify: ssl.SSLContext | bool = False if self._insecure else trust_for(self.api_host, ca_file)
        except (OSError, ssl.SSLError) as err:
            raise ConfigurationError(f"cannot load TLS trust for registry {host} (ca_file={ca_file}): {err}") from None
        self._http = httpx.Client(
            auth=_CachedAuth(self),
            verify=verify,
            timeout=httpx.Timeout(self._timeout, connect=min(5.0, self._timeout)),
            headers={"User-Agent": _USER_AGENT},
            follow_redirects=False,
        )
        _install_deadlines(self._http)

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

    # -- secrets -----------------------------------------------------------------------------
    def _remember_secret(self, secret: str, *, user: str | None = None) -> None:
        """Every form a secret can take in an echoed header, body or URL."""
        if not secret:
            return
        forms = {secret, quote(secret, safe=""), quote_plus(secret)}
        if user is not None:
            basic = encode_basic(user, secret)
            forms |= {basic, basic.rstrip("="), base64.urlsafe_b64encode(f"{user}:{secret}".encode()).decode()}
        with self._lock:
            self._secrets |= {form for form in forms if form}

    def _scrub(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        return _AUTH_VALUE.sub(r"\1\2***", text)

    def _fail(self, kind: type[RegistryError], text: str, status: int | None = None) -> RegistryError:
        """Every error leaves through here: scrubbed, naming the registry and who was asking."""
        if self._who() not in text:
            text = f"{text} (as {self._who()})"
        return kind(self._scrub(text), host=self.host, status=status)

    # -- auth plumbing ---------------------------------------------------------------------
    def scope_for(self, path: str) -> str | None:
        match = _REPO_PATH.match(path)
        return repository_scope(match.group("name"), self.actions) if match else None

    def authorize(self, headers: httpx.Headers | dict[str, str], scope: str | None) -> None:
        if self.scheme == "basic" and self.credential is not None and not self.credential.identity_token:
            basic = encode_basic(self.credential.username, self.credential.password.get_secret_value())
            headers["Authorization"] = f"Basic {basic}"
        elif self.scheme == "bearer":
            token = self._cached_token(scope or "")
            if token:
                headers["Authorization"] = f"Bearer {token}"

    def _cached_token(self, scope: str) -> str | None:
        """A live token asked for (at least) ``scope``: by this client, a batch request, or an earlier process."""
        found = self._cache.find(scope_atoms([scope] if scope else []))
        if found is None:
            return None
        self._remember_secret(found.value)  # a token read from disk is scrubbed like one fetched now
        return found.value

    def _challenge(self, headers: httpx.Headers) -> Challenge | None:
        """The 401's challenge; ``None`` when there is none (a refusal, not an open door)."""
        try:
            return read_challenge(headers.get("www-authenticate"), host=self.host)
        except RegistryError as err:
            raise self._fail(RegistryError, str(err)) from None

    def _realm(self, challenge: Challenge) -> tuple[Realm, httpx.URL]:
        """The token endpoint, refused if it is not an http(s) URL or would carry a secret in clear text."""
        sender = self._who() if self.credential is not None else None
        try:
            realm = token_realm(
                challenge,
                host=self.host,
                base_url=self._base_url,
                sender=sender,
                declared_insecure=self._declared_insecure,
            )
        except RegistryError as err:
            raise self._fail(RegistryError, str(err)) from None
        try:
            return realm, httpx.URL(realm.url)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise self._fail(RegistryError, str(not_a_url(self.host, realm.url))) from None

    def _fetch_token(
        self, challenge: Challenge, scope: str | None, deadline: Deadline, *, scopes: list[str] | None = None
    ) -> str:
        """One token request for ``scope`` (or for all of ``scopes`` at once: the token spec allows several)."""
        found, realm = self._realm(challenge)
        service = f"token service {found.origin}"
        wanted = list(scopes) if scopes else ([scope] if scope else [])
        params: list[tuple[str, str]] = [("service", challenge.params.get("service", ""))]
        params += [("scope", s) for s in wanted]
        credential = self.credential
        try:
            if credential is None:  # anonymous token, as for public repositories
                answer = self._exchange("GET", realm, params=params, deadline=deadline, cap=TOKEN_BODY_CAP)
            elif credential.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": credential.password.get_secret_value(),
                    "client_id": _USER_AGENT,
                    "service": challenge.params.get("service", ""),
                }
                if wanted:
                    form["scope"] = " ".join(wanted)  # OAuth2 form: one space-separated value
                answer = self._exchange("POST", realm, data=form, deadline=deadline, cap=TOKEN_BODY_CAP)
            else:
                basic = encode_basic(credential.username, credential.password.get_secret_value())
                headers = {"Authorization": f"Basic {basic}"}
                answer = self._exchange(
                    "GET", realm, params=params, headers=headers, deadline=deadline, cap=TOKEN_BODY_CAP
                )
        except _Unreachable as failure:
            raise self._unreachable(failure, "fetch a token", where=service) from None
        return self._accept_token(answer, wanted, service)

    def _accept_token(self, answer: _Answer, scopes: list[str], service: str) -> str:
        if answer.status in (401, 403):
            raise self._refused(answer, "log in", service=service)
        if answer.status != 200:
            raise self._unexpected(answer, "fetch a token", where=service)
        if answer.undecodable:
            raise self._fail(
                RegistryError,
                f"{service} for {self.host} sent a token body that cannot be decoded "
                f"(Content-Encoding {answer.headers.get('content-encoding', '?')!r})",
            )
        if answer.truncated:
            raise self._fail(RegistryError, f"{service} for {self.host} answered more than {TOKEN_BODY_CAP} bytes")
        try:
            grant = parse_token_response(answer.body, service=f"{service} for {self.host}")
        except RegistryError as err:
            raise self._fail(RegistryError, str(err)) from None
        self._remember_secret(grant.token)
        if grant.refresh_token:
            self._remember_secret(grant.refresh_token)
        self._cache.add(grant.token, covered(grant.token, scope_atoms(scopes)), grant.lifetime)
        return grant.token

    # -- errors ----------------------------------------------------------------------------
    def _who(self) -> str:
        if self.credential is None:
            return "anonymous access"
        return f"user {self.credential.username!r} (credentials from {self.credential.source})"

    def _refused(self, answer: _Answer, action: str, *, service: str | None = None) -> RegistryError:
        status = answer.status
        where = f" ({service})" if service else ""
        said = _server_message(answer.body, answer.headers.get("content-type", ""))
        header = answer.headers.get("www-authenticate", "")
        try:
            challenge: Challenge | None = Challenge.parse(header)
        except RegistryError:
            challenge = None
        error = challenge.params.get("error", "") if challenge else ""
        denied = status == 403 or error == "insufficient_scope"
        if denied:
            text = f"registry {self.host}{where} does not allow {self._who()} to {action}: HTTP {status}"
        else:
            text = f"registry {self.host}{where} refused {self._who()}: HTTP {status}"
        if not header.strip() and status == 401 and service is None:
            text += " without a WWW-Authenticate challenge"
        if said:
            text += f" ({said})"
        elif challenge and challenge.params.get("error_description"):
            text += f" ({challenge.params['error_description'][:200]})"
        hint = self._refusal_hint(action, status) if self._refusal_hint else None
        text += ". " + (
            hint
            or "Check the password or token and its scopes; "
            f"`{self._explain_command()}` shows where the credentials come from."
        )
        return self._fail(AuthorizationError if denied else AuthenticationError, text, status)

    def _unexpected(self, answer: _Answer, what: str, *, where: str | None = None) -> RegistryError:
        """A status that is neither yes, no nor a refusal; 429/5xx (after the retries) mean unavailable."""
        status = answer.status
        said = _server_message(answer.body, answer.headers.get("content-type", ""))
        source = where or f"registry {self.host}"
        text = f"{source} answered HTTP {status} when asked to {what} as {self._who()}"
        if status in RETRY_STATUSES or status >= 500:
            text += f", {answer.attempts} attempt(s) in {answer.elapsed:.1f} s"
            if said:
                text += f" ({said})"
            return self._fail(RegistryUnavailable, text + "; try again later", status)
        if said:
            text += f" ({said})"
        return self._fail(RegistryError, text, status)

    def _unreachable(self, failure: _Unreachable, what: str, *, where: str | None = None) -> RegistryError:
        cause = failure.cause
        reason = "deadline reached" if isinstance(cause, _Expired) else f"{type(cause).__name__}: {cause}"
        target = where or f"registry {self.host}"
        return self._fail(
            RegistryUnavailable,
            f"{target}: could not {what} as {self._who()}: {failure.url} did not answer "
            f"({reason[:200]}) after {failure.attempts} attempt(s) in {failure.elapsed:.1f} s",
        )

    @contextmanager
    def _operation(self, what: str) -> Iterator[Deadline]:
        """One public call: a fresh deadline, and anything unforeseen becomes a scrubbed ``RegistryError``."""
        deadline = self.retry.start()
        try:
            yield deadline
        except FlytePrivateRegistryError:
            raise
        except _Unreachable as failure:
            raise self._unreachable(failure, what) from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError, RecursionError) as err:
            raise self._fail(
                RegistryError, f"registry {self.host}: could not {what} as {self._who()}: {type(err).__name__}: {err}"
            ) from None

    # -- the one HTTP primitive ------------------------------------------------------------
    def _exchange(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        deadline: Deadline,
        headers: dict[str, str] | None = None,
        params: list[tuple[str, str]] | dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        cap: int = 0,
    ) -> _Answer:
        """One request with retries: 429/502/503/504 and dropped connections again, until the policy says stop.

        ``cap`` bounds the body read from a 2xx answer (0: not read at all); error bodies are
        read up to :data:`ERROR_BODY_CAP` for their message.
        """
        policy, started, attempt = self.retry, time.monotonic(), 0
        while True:
            attempt += 1
            try:
                answer = self._once(method, url, deadline, headers or {}, params, data, cap)
            except (httpx.TransportError, _Expired) as err:
                elapsed = time.monotonic() - started
                wait = policy.delay(attempt)
                retryable = isinstance(err, (*_RETRYABLE, _Expired))
                if not retryable or attempt >= policy.attempts or deadline.remaining() <= wait:
                    raise _Unreachable(str(url).split("?")[0], err, attempt, elapsed) from None
                time.sleep(wait)
                continue
            elapsed = time.monotonic() - started
            if answer.status not in RETRY_STATUSES:
                return replace(answer, attempts=attempt, elapsed=elapsed)
            wait = policy.delay(attempt, parse_retry_after(answer.headers.get("retry-after")))
            if attempt >= policy.attempts or deadline.remaining() <= wait:
                return replace(answer, attempts=attempt, elapsed=elapsed)
            time.sleep(wait)

    def _once(
        self,
        method: str,
        url: str | httpx.URL,
        deadline: Deadline,
        headers: dict[str, str],
        params: list[tuple[str, str]] | dict[str, str] | None,
        data: dict[str, str] | None,
        cap: int,
    ) -> _Answer:
        """One attempt: at most ``timeout`` seconds of wall clock (and never past the deadline)."""
        at = min(deadline.at, time.monotonic() + self._timeout)
        headers = dict(headers)
        _local.deadline = at
        try:
            for hop in range(MAX_REDIRECTS + 1):
                left = at - time.monotonic()
                if left <= 0:
                    raise _Expired()
                timeout = httpx.Timeout(left, connect=min(5.0, left))
                request = self._http.build_request(
                    method, url, headers=headers, params=params, data=data, timeout=timeout
                )
                response = self._http.send(request, stream=True, auth=None)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        if hop == MAX_REDIRECTS:
                            raise self._fail(
                                RegistryError,
                                f"registry {self.host}: {request.url.copy_with(query=None)} redirected more than "
                                f"{MAX_REDIRECTS} times (a redirect loop?), last to {location[:120]!r}",
                            )
                        url = self._follow(request.url, location, headers)
                        params = None  # part of the URL now
                        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                            method, data = "GET", None
                        continue
                    success = 200 <= response.status_code < 300
                    body, truncated, undecodable = self._read(response, cap if success else ERROR_BODY_CAP, at)
                    return _Answer(
                        response.status_code, response.headers, body, request.url, 1, 0.0, truncated, undecodable
                    )
                finally:
                    response.close()
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            _local.deadline = None

    def _follow(self, current: httpx.URL, location: str, headers: dict[str, str]) -> httpx.URL:
        try:
            target = current.join(location)
        except (httpx.InvalidURL, ValueError):
            target = None
        if target is None or target.scheme not in ("http", "https") or not target.host:
            raise self._fail(
                RegistryError, f"registry {self.host} redirected to {location[:120]!r}, not an http(s) URL"
            )
        if (target.scheme, target.host, target.port) != (current.scheme, current.host, current.port):
            headers.pop("Authorization", None)  # credentials stay with the origin they were meant for
        return target

    @staticmethod
    def _read(response: httpx.Response, cap: int, at: float) -> tuple[bytes, bool, bool]:
        """At most ``cap`` decoded bytes, and never past ``at``: (body, truncated, undecodable)."""
        if cap <= 0 or response.request.method == "HEAD":
            return b"", False, False
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                if time.monotonic() > at:
                    raise _Expired()
                if size + len(chunk) > cap:
                    chunks.append(chunk[: cap - size])
                    return b"".join(chunks), True, False
                chunks.append(chunk)
                size += len(chunk)
        except httpx.DecodingError:
            return b"".join(chunks), False, True
        return b"".join(chunks), False, False

    # -- API -------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        deadline: Deadline,
        scope: str | None,
        headers: dict[str, str] | None = None,
        cap: int = 0,
    ) -> _Answer:
        """The auth dance: send, and on a 401 answer the challenge (Basic, or fetch a token) and send again.

        A challenge already known (from this client's ping or an earlier process) fetches the
        token first instead of being told so by a 401; a remembered endpoint that no longer
        answers as remembered is forgotten and the dance starts again from ``GET /v2/``.
        """
        try:
            answer = self._dance(method, path, deadline=deadline, scope=scope, headers=headers, cap=cap)
        except (_Unreachable, RegistryError):
            if not self._endpoint_from_cache:
                raise
            self._forget_endpoint()
            return self._dance(method, path, deadline=deadline, scope=scope, headers=headers, cap=cap)
        self._endpoint_from_cache = False  # the remembered endpoint answered
        return answer

    def _dance(
        self,
        method: str,
        path: str,
        *,
        deadline: Deadline,
        scope: str | None,
        headers: dict[str, str] | None,
        cap: int = 0,
    ) -> _Answer:
        url = self._base(deadline) + path
        headers = dict(headers or {})
        fetched: str | None = None
        self.authorize(headers, scope)
        if "Authorization" not in headers and scope and self.scheme == "bearer" and self.challenge is not None:
            fetched = self._fetch_token(self.challenge, scope, deadline)  # saves the 401 round trip
            headers["Authorization"] = f"Bearer {fetched}"  # even if granted less: the registry then says so
        answer = self._exchange(method, url, headers=headers, deadline=deadline, cap=cap)
        if answer.status != 401:
            return answer
        sent = headers.get("Authorization", "")
        sent_token = sent[7:] if sent.startswith("Bearer ") else None
        challenge = self._challenge(answer.headers)
        if challenge is None:
            return answer  # a refusal: the caller says so
        if challenge.params.get("error") == "insufficient_scope":
            if sent_token is None or sent_token == fetched or not scope or challenge.scheme != "bearer":
                return answer  # a refusal of a token asked for exactly this: the caller says so
            # a token asked for with others (a batch, or a wider earlier one) was granted less: ask for this alone
            self._cache.discard(sent_token)
            fetched = self._fetch_token(challenge, scope, deadline)
            headers["Authorization"] = f"Bearer {fetched}"
            return self._exchange(method, url, headers=headers, deadline=deadline, cap=cap)
        elif challenge.scheme == "basic":
            if self.credential is None or sent.startswith("Basic"):
                return answer  # nothing to offer, or already refused
            self.scheme = "basic"
        elif challenge.scheme == "bearer":
            if sent_token is not None:
                self._cache.discard(sent_token)  # expired or revoked: never sent again
            if self.challenge != challenge and self._base_url is not None:
                self._cache.remember_endpoint(self._base_url, challenge.scheme, challenge.params)
            self.scheme, self.challenge = "bearer", challenge
            headers["Authorization"] = f"Bearer {self._fetch_token(challenge, scope, deadline)}"
            return self._exchange(method, url, headers=headers, deadline=deadline, cap=cap)
        else:
            return answer
        headers.pop("Authorization", None)
        self.authorize(headers, scope)
        return self._exchange(method, url, headers=headers, deadline=deadline, cap=cap)

    def _base(self, deadline: Deadline) -> str:
        if self._base_url is None and not self._use_remembered_endpoint():
            self._ping(deadline)
        assert self._base_url is not None
        return self._base_url

    def _use_remembered_endpoint(self) -> bool:
        """Skip ``GET /v2/``: an earlier process learnt the base URL and the challenge (Basic/Bearer only)."""
        remembered = self._cache.usable_endpoint(insecure=self._insecure)
        if remembered is None:
            return False
        challenge = Challenge(remembered.scheme, remembered.params)
        self._base_url, self.challenge, self._endpoint_from_cache = remembered.base_url, challenge, True
        if self.scheme is None:
            self.scheme = challenge.scheme
        return True

    def _forget_endpoint(self) -> None:
        self._cache.forget_endpoint()
        self._base_url, self.challenge, self.scheme, self._endpoint_from_cache = None, None, None, False

    def _url(self, path: str) -> str:
        with self._operation("reach the registry") as deadline:
            return self._base(deadline) + path

    def ping(self) -> Challenge:
        """``GET /v2/`` without credentials: learns the scheme (https, or http for insecure hosts)."""
        with self._operation("reach the registry") as deadline:
            return self._ping(deadline)

    def _ping(self, deadline: Deadline) -> Challenge:
        schemes = ("https", "http") if self._insecure else ("https",)
        tried: list[str] = []
        last: _Unreachable | None = None
        for scheme in schemes:
            base = f"{scheme}://{self.api_host}"
            try:
                answer = self._exchange("GET", base + "/v2/", deadline=deadline)
            except _Unreachable as failure:
                tried.append(f"{base}/v2/ ({type(failure.cause).__name__}: {str(failure.cause)[:160]})")
                last = failure
                if isinstance(failure.cause, (*_RETRYABLE, _Expired)) and deadline.expired:
                    break
                continue
            self._base_url = base
            if answer.status == 200:
                challenge = Challenge("none")
            elif answer.status == 401:
                found = self._challenge(answer.headers)
                if found is None:
                    raise self._fail(
                        AuthenticationError,
                        f"registry {self.host} answered HTTP 401 at {base}/v2/ without a WWW-Authenticate "
                        f"challenge: it refuses {self._who()} and does not say how to log in",
                        401,
                    )
                challenge = found
            elif answer.status in RETRY_STATUSES or answer.status >= 500:
                raise self._unexpected(answer, "answer /v2/")
            else:
                raise self._fail(
                    RegistryError,
                    f"{base}/v2/ answered HTTP {answer.status}: is {self.host} a container registry?",
                    answer.status,
                )
            self.challenge = challenge
            self._endpoint_from_cache = False
            if self.scheme is None:
                self.scheme = challenge.scheme
            self._cache.remember_endpoint(base, challenge.scheme, challenge.params)
            return challenge
        hint = "" if self._insecure else " (for a plain-HTTP registry pass insecure=True)"
        attempts = f"; {last.attempts} attempt(s) in {last.elapsed:.1f} s" if last else ""
        raise self._fail(
            RegistryUnavailable, f"cannot reach registry {self.host} at {' or '.join(tried)}{attempts}{hint}"
        )

    def login(self, repository: str) -> LoginResult:
        """Prove the credential works for ``repository`` with this client's actions, before any build."""
        with self._operation("log in") as deadline:
            return self._login(repository, deadline)

    def _login(self, repository: str, deadline: Deadline) -> LoginResult:
        challenge = self._known_challenge(deadline)
        if challenge.scheme == "none":
            return LoginResult("none", frozenset(self.actions))
        if self.credential is None:
            raise self._fail(
                AuthenticationError,
                f"registry {self.host} requires authentication ({challenge.scheme}) and no credentials were found",
                401,
            )
        if challenge.scheme == "basic":
            answer = self._request("GET", "/v2/", deadline=deadline, scope=None)
            if answer.status == 200:
                return LoginResult("basic", None)
            if answer.status in (401, 403):
                raise self._refused(answer, "log in")
            raise self._unexpected(answer, "log in")
        if challenge.scheme != "bearer":
            raise self._fail(RegistryError, f"registry {self.host} asks for unsupported auth {challenge.scheme!r}")
        scope = repository_scope(repository, self.actions)
        token = self._cached_token(scope)
        if token is None:
            try:
                token = self._fetch_token(challenge, scope, deadline)
            except RegistryError:
                if not self._endpoint_from_cache:
                    raise
                self._forget_endpoint()  # a remembered realm that no longer works: ask /v2/ again
                return self._login(repository, deadline)
        granted = granted_actions(token, repository)
        if granted is not None:
            missing = [a for a in self.actions if a not in granted]
            if missing:
                hint = self._refusal_hint(missing[0], 403) if self._refusal_hint else None
                raise self._fail(
                    AuthorizationError,
                    f"registry {self.host} authenticated {self._who()} but granted only "
                    f"{sorted(granted) or 'no access'} on {repository}, not {'/'.join(missing)}. "
                    + (hint or "Give the user push rights on that repository, or use a token that has them."),
                    403,
                )
        return LoginResult("bearer", granted)

    def _known_challenge(self, deadline: Deadline) -> Challenge:
        """The registry's challenge: this client's, an earlier process's (no request), or ``GET /v2/``'s."""
        if self.challenge is not None or self._use_remembered_endpoint():
            assert self.challenge is not None
            return self.challenge
        return self._ping(deadline)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest if ``repository:reference`` exists, ``None`` if the registry says 404.

        Asks for a pull-only token: a pure check needs no push rights (those are proven by
        :meth:`login`, just before a push), and a pull token is what read-only users can get.
        A token already held that covers pull (a push token from :meth:`login`) serves too.
        """
        what = f"check {repository}:{reference}"
        with self._operation(what) as deadline:
            answer = self._request(
                "HEAD",
                f"/v2/{repository}/manifests/{reference}",
                deadline=deadline,
                scope=repository_scope(repository, ("pull",)),
                headers={"Accept": MANIFEST_ACCEPT},
            )
            if answer.status == 200:
                digest = answer.headers.get("docker-content-digest", "").strip()
                return digest if DIGEST.match(digest) else ""
            if answer.status == 404:
                return None
            if answer.status in (401, 403):
                raise self._refused(answer, f"pull {repository}")
            if answer.status in RETRY_STATUSES or answer.status >= 500:
                raise self._unexpected(answer, what)
            raise self._fail(
                RegistryError,
                f"registry {self.host} answered HTTP {answer.status} for {repository}:{reference}; "
                "cannot tell whether the image exists",
                answer.status,
            )

    def exists(self, repository: str, reference: str) -> bool:
        return self.manifest_digest(repository, reference) is not None

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest ``repository:reference`` (tag or digest) as JSON; ``None`` if the registry says 404.

        A GET with the same Accept list as :meth:`manifest_digest`, so an index comes back as the
        index. Content is addressed: when ``reference`` is a sha256 digest the body must hash to it
        (a proxy serving something else is an error, not a platform list).
        """
        what = f"read the manifest of {repository}:{reference}"
        with self._operation(what) as deadline:
            answer = self._request(
                "GET",
                f"/v2/{repository}/manifests/{reference}",
                deadline=deadline,
                scope=repository_scope(repository, ("pull",)),
                headers={"Accept": MANIFEST_ACCEPT},
                cap=MANIFEST_BODY_CAP,
            )
            if answer.status == 404:
                return None
            document = self._json_body(answer, what, f"pull {repository}", MANIFEST_BODY_CAP)
            try:
                return read_manifest(
                    answer.body,
                    document,
                    host=self.host,
                    repository=repository,
                    reference=reference,
                    content_type=answer.headers.get("content-type", ""),
                    digest_header=answer.headers.get("docker-content-digest", ""),
                )
            except RegistryError as err:
                raise self._fail(RegistryError, str(err)) from None

    def blob_json(self, repository: str, digest: str) -> dict[str, Any]:
        """A small JSON blob (an image config) by digest, checked against its digest; a 404 is an error."""
        what = f"read blob {digest} of {repository}"
        with self._operation(what) as deadline:
            answer = self._request(
                "GET",
                f"/v2/{repository}/blobs/{digest}",
                deadline=deadline,
                scope=repository_scope(repository, ("pull",)),
                cap=BLOB_JSON_CAP,
            )
            if answer.status == 404:
                raise self._fail(
                    RegistryError,
                    f"registry {self.host} has no blob {digest} in {repository} (a manifest names it)",
                    404,
                )
            document = self._json_body(answer, what, f"pull {repository}", BLOB_JSON_CAP)
            if not content_matches(answer.body, digest):
                raise self._fail(
                    RegistryError, f"registry {self.host} served blob {digest} of {repository} with other content"
                )
            return document

    def _json_body(self, answer: _Answer, what: str, action: str, cap: int) -> dict[str, Any]:
        """A 200 answer's JSON object; a refusal, an error status, a truncated or unreadable body raise."""
        if answer.status in (401, 403):
            raise self._refused(answer, action)
        if answer.status != 200:
            raise self._unexpected(answer, what)
        if answer.truncated or answer.undecodable:
            problem = f"is larger than {cap} bytes" if answer.truncated else "cannot be decoded"
            raise self._fail(RegistryError, f"registry {self.host}: could not {what}: the answer {problem}")
        document = json_object(answer.body)
        if document is None:
            raise self._fail(RegistryError, f"registry {self.host}: could not {what}: the answer is not a JSON object")
        return document

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

    def prefetch_tokens(self, repositories: Iterable[str], actions: tuple[str, ...] = ("pull",)) -> int:
        """Tokens for every repository in as few requests as the URL allows (one for tens of repositories).

        The token spec allows several ``scope`` parameters in one request; registries that grant
        less than asked are handled where the token is used (that repository asks again alone).
        Repositories already covered by a live token are left out. Returns the requests made.
        """
        with self._operation("fetch a token") as deadline:
            challenge = self._known_challenge(deadline)
            if challenge.scheme != "bearer":
                return 0
            missing = [
                scope
                for scope in dict.fromkeys(repository_scope(r, actions) for r in repositories)
                if self._cached_token(scope) is None
            ]
            batches = scope_batches(missing)
            for batch in batches:
                self._fetch_token(challenge, None, deadline, scopes=batch)
            return len(batches)

    def check_many(
        self, images: Iterable[tuple[str, str]], *, workers: int = 8
    ) -> dict[tuple[str, str], str | FlytePrivateRegistryError | None]:
        """Digests of many ``(repository, reference)`` pairs: one token request, then HEADs in parallel.

        Each answer is a digest, ``None`` (missing) or the library error that check raised, so
        one refused repository does not hide the others' answers. A credential the token service
        refuses is that error for every pair, without asking once per repository.
        """
        pairs = list(dict.fromkeys(images))
        if not pairs:
            return {}
        try:
            self.prefetch_tokens(repository for repository, _ in pairs)
        except AuthenticationError as err:
            return dict.fromkeys(pairs, err)
        except FlytePrivateRegistryError:
            pass  # each check below asks on its own and reports its own error

        def one(pair: tuple[str, str]) -> str | FlytePrivateRegistryError | None:
            try:
                return self.manifest_digest(*pair)
            except FlytePrivateRegistryError as err:
                return err

        if len(pairs) == 1:
            return {pairs[0]: one(pairs[0])}
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pairs)))) as pool:
            return dict(zip(pairs, pool.map(one, pairs), strict=True))
