"""Existence checks and platform reads over the stdlib, cold or warm: the common ``pyflyte`` case without httpx.

Why: importing httpx alone costs more CPU than flytekit's whole check through the docker daemon,
while ``http.client`` and ``ssl`` are already loaded by ``import flytekit`` (requests). So the
builder asks here first. With what an earlier process remembered (the endpoint and a token, in
:mod:`._token_cache`) a check is one HEAD. With nothing remembered it is the full client's own
dance: ``GET /v2/``, a pull token from the challenge's realm (Basic credentials, or anonymous),
then the HEAD; the endpoint and token are stored in the same cache entries the full client
writes, so the next run is warm whichever path it takes. The platform check's GETs (manifest,
config blob, one redirect to object storage) are made here too, and a tag never checked on this
machine is checked by a GET of its manifest, whose body that check then reads.

This path answers only clean cases: a 200 with a digest, a 404, a well-formed manifest or blob.
Every other outcome (an odd challenge or realm, a refused or odd token, a 401 after the token,
429, 5xx, a redirect where none is expected, a timeout or the call's time budget spent, a TLS
error, an oversized or encoded body, a proxy in the environment) is :data:`UNKNOWN`, and the
caller asks the full :class:`~.RegistryClient`, which retries, follows, scrubs and explains.
Challenges, realms and token answers are judged by :mod:`._auth`, the full client's rules, so no
credential goes where the full client would not send it; the calls that need those rules import
them, so a warm HEAD pays for nothing else. Nothing is raised from here and no message is built,
so nothing here can leak a secret.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from .._reference import api_host, is_loopback
from ..credentials._base import encode_basic
from ._spec import DIGEST, MANIFEST_ACCEPT
from ._tls import DOCKER_CERTS_DIR, context_for
from ._token_cache import Endpoint, TokenCache, repository_scope, scope_atoms
from ._watchdog import WATCHDOG

if TYPE_CHECKING:
    from ..credentials import Credential
    from ._auth import Challenge, Manifest, Realm

#: The answer this path cannot give: ask the full client.
UNKNOWN: Final = object()
#: Wall clock for one call (a check, a manifest or a blob read): past it the full client takes over.
BUDGET_SECONDS = 5.0
#: A connection :meth:`QuickChecker.warm_up` opened is used within this many seconds or not at all:
#: servers and load balancers close idle ones (AWS ALB after 60 s, nginx's default after 75 s).
WARM_SECONDS = 20.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "flyte-private-registry"
_DIALER = "flyte-private-registry-warm-up-dial"
_T = TypeVar("_T")
_Origin = tuple[str, str, int | None]
_Opened = dict[_Origin, list[http.client.HTTPConnection]]


class _Unclean(Exception):
    """An answer this path does not judge: the full client's turn."""


class _Reply:
    """An answer, read (up to a cap) and released."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class _Warm:
    """What one warm-up learnt and opened for a registry, filled in as it goes: connections are taken one each."""

    def __init__(self, deadline: float) -> None:
        self.pid, self.at, self.deadline = os.getpid(), time.monotonic(), deadline
        self.endpoint: Endpoint | None = None
        self.seconds: float | None = None  # the registry's TCP connect
        self.connections: _Opened = {}
        self.pending: dict[_Origin, int] = {}  # connections still being opened, by origin
        self.ready = threading.Event()  # the endpoint is in (or never will be)


_WarmKey = tuple[str, bool, str | None]
#: One warm-up per :func:`warm_key`.
_WARMED: dict[_WarmKey, _Warm] = {}
_WARMED_LOCK = threading.Condition()  # also signals each connection a warm-up opens


def warm_key(host: str, insecure: bool, ca_file: Path | str | None) -> _WarmKey:
    """What decides how a registry is reached and trusted (API host, declared insecure, CA file): one warm-up each."""
    return api_host(host), insecure, str(ca_file) if ca_file is not None else None


def _warmed(key: _WarmKey) -> _Warm | None:
    """This process's fresh warm-up for ``key``; a stale one is closed, an inherited one (a fork) let go."""
    with _WARMED_LOCK:
        warm = _WARMED.get(key)
        if warm is None or (warm.pid == os.getpid() and time.monotonic() - warm.at <= WARM_SECONDS):
            return warm
        del _WARMED[key]
    if warm.pid == os.getpid():
        for connection in [c for group in warm.connections.values() for c in group]:
            connection.close()
    return None


def _proxied(scheme: str, host: str) -> bool:
    """httpx honours the proxy variables and this path does not speak to proxies: leave those hosts to it."""
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(host, proxies)


class QuickChecker:
    """One registry, one credential, kept-alive connections; see the module docstring for when it answers.

    ``timeout`` is the wall clock one call may take (enforced by closing its sockets), so a
    dripping server cannot hold the builder before the full client's own deadline starts.
    """

    def __init__(
        self,
        host: str,
        credential: Credential | None,
        *,
        insecure: bool = False,
        ca_file: Path | str | None = None,
        timeout: float = BUDGET_SECONDS,
    ) -> None:
        self.host = host
        self.api_host = api_host(host)
        self._credential = credential
        # the full client's rules: plain HTTP only for loopback or declared-insecure hosts without a CA file
        self._insecure = (insecure or is_loopback(host)) and ca_file is None
        self._declared_insecure = insecure
        self._ca_file = ca_file
        self._budget = timeout
        self._warm_key = warm_key(host, insecure, ca_file)
        self._adopted: dict[_Origin, float | None] = {}  # connections a warm-up opened: their TCP connect
        self._warming = False  # this checker is a warm-up's: it takes nothing from one
        self._cache = TokenCache(self.api_host, credential)
        self._endpoint: Endpoint | None = None  # remembered, or learnt by this process's GET /v2/
        self._connections: dict[_Origin, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()  # one call at a time
        self._guard = threading.Lock()  # the connections, against the watchdog closing them
        self._at = 0.0
        self._expired = False
        self._fetches = True  # a sibling only uses tokens its parent fetched

    def sibling(self) -> QuickChecker:
        """A checker on connections of its own that shares what this one learnt (the endpoint, the tokens).

        For checks run alongside this one's (``push/_lookahead.py``): it never fetches a token,
        so a run still makes one token request per registry; a repository its parent's token does
        not cover is :data:`UNKNOWN`.
        """
        other = QuickChecker(
            self.host, self._credential, insecure=self._declared_insecure, ca_file=self._ca_file, timeout=self._budget
        )
        other._cache, other._endpoint, other._fetches = self._cache, self._endpoint, False
        return other

    # -- the calls -----------------------------------------------------------------------------
    def manifest_digest(
        self, repository: str, reference: str, *, batch: Callable[[], Iterable[str]] | None = None
    ) -> object:
        """The digest (str), ``None`` for a 404, or :data:`UNKNOWN`.

        ``batch`` lists other repositories a token request may cover at the same time, so a
        workflow's images cost one token request per registry (as the full client's prefetch).
        """

        def head() -> str | None:
            headers = {"Accept": MANIFEST_ACCEPT, **self._authorization(repository, batch)}
            path = f"/v2/{repository}/manifests/{reference}"
            reply = self._send("HEAD", self._known_endpoint().base_url + path, headers, keep={200, 404})
            if reply.status == 404:
                return None
            digest = (reply.headers.get("Docker-Content-Digest") or "").strip()
            if not DIGEST.match(digest):
                raise _Unclean()
            return digest

        return self._call(head)

    def reach(self) -> bool:
        """Know the registry's endpoint (remembered, or ``GET /v2/``); ``False`` if this path cannot judge it."""
        return self._call(lambda: self._known_endpoint() is not None) is True

    def open(self) -> float | None:
        """Connect to the registry now, before there is anything to ask: the TCP connect's seconds, or ``None``.

        For checks made alongside (``push/_lookahead.py``): their connections are set up while the
        first check logs in, and a TCP connect takes one round trip, which tells a registry across
        a network, where more connections pay, from one nearby. ``None`` if the connection is
        already open or could not be made (the first request then tries as usual).
        """
        seconds = self._call(self._connect)
        return seconds if isinstance(seconds, float) else None

    def warm_up(self, count: int) -> bool:
        """Learn the endpoint, then open ``count`` connections to the registry and one to its token realm, for later.

        Why: ``pyflyte`` imports for most of a second before it asks the first builder, and a
        check's first round trips (``GET /v2/``, then TCP and TLS to the registry and to the
        realm) depend on nothing but the declaration. ``push/_warm_up.py`` runs this on a thread
        at the plugin's import. Checkers of the same registry, trust and CA file take what it
        leaves, within :data:`WARM_SECONDS`: the endpoint (waiting for one in flight rather than
        asking again), then one connection each (waiting for one being opened, which is never
        slower than opening another). Run on a checker without a credential: nothing secret is
        sent, and what it learns is what any check would (the endpoint, remembered on disk).
        ``False`` if this path cannot judge the registry; the checks then start from nothing.
        """
        warm = _Warm(time.monotonic() + self._budget)
        with _WARMED_LOCK:
            _WARMED[self._warm_key] = warm
        self._warming = True
        dials: list[_Origin] = []

        def learn() -> tuple[Endpoint, float | None, http.client.HTTPConnection | None]:
            seconds = None
            if not self._insecure and self._cache.usable_endpoint(insecure=False) is None:
                key = _origin(f"https://{self.api_host}/")
                seconds = self._dial(key, self._connection(key))
            endpoint = self._known_endpoint()  # a ping goes over the connection just opened
            with self._guard:
                first = self._connections.pop(_origin(endpoint.base_url), None)
            return endpoint, seconds, first if first is not None and first.sock is not None else None

        try:
            learnt = self._call(learn)
            if not isinstance(learnt, tuple):
                return False
            endpoint, seconds, first = learnt
            home = _origin(endpoint.base_url)
            dials = [home] * (count - (first is not None))
            if endpoint.scheme == "bearer":
                realm = self._call(lambda: self._realm_origin(endpoint))
                if isinstance(realm, tuple) and realm != home:
                    dials.insert(0, realm)
            with _WARMED_LOCK:
                warm.endpoint, warm.seconds = endpoint, seconds
                warm.connections[home] = [first] if first is not None else []
                for key in dials:
                    warm.pending[key] = warm.pending.get(key, 0) + 1
        finally:
            warm.ready.set()  # a check waiting for the endpoint goes on, with it or without
        for key in dials:  # all at once: each is a round trip or two across a network
            thread = threading.Thread(target=self._warm_dial, args=(warm, key, home), name=_DIALER, daemon=True)
            thread.start()
        return True

    def _warm_dial(self, warm: _Warm, key: _Origin, home: _Origin) -> None:
        """One connection to ``key`` for :meth:`warm_up`, opened by a checker of its own (one call at a time each)."""
        dialer = QuickChecker(self.host, None, insecure=self._declared_insecure, ca_file=self._ca_file)
        dialer._warming = True
        opened = dialer._call(lambda: dialer._dial_new(key))
        with _WARMED_LOCK:
            warm.pending[key] -= 1
            if isinstance(opened, tuple):
                warm.connections.setdefault(key, []).append(opened[1])
                if key == home:
                    warm.seconds = opened[0] if warm.seconds is None else min(warm.seconds, opened[0])
            _WARMED_LOCK.notify_all()

    def ready(self, repository: str, *, batch: Callable[[], Iterable[str]] | None = None) -> bool:
        """Log in for ``repository`` (and the batch's) now, as a check would: what :meth:`sibling` checks use."""

        def login() -> bool:
            self._authorization(repository, batch)
            return True

        return self._call(login) is True

    def manifest(
        self, repository: str, reference: str, *, batch: Callable[[], Iterable[str]] | None = None, check: bool = False
    ) -> object:
        """The manifest (:class:`~._auth.Manifest`), or :data:`UNKNOWN` (a 404 too: the full client explains it).

        With ``check``, this is the existence check (``None`` for a 404, ``batch`` as for
        :meth:`manifest_digest`), by ``GET`` for a caller about to read the body anyway; the
        digest must then be sent, as the ``HEAD`` requires.
        """

        def get() -> Manifest | None:
            from ._auth import MANIFEST_BODY_CAP, json_object, read_manifest

            path = f"/v2/{repository}/manifests/{reference}"
            reply = self._get(repository, path, {"Accept": MANIFEST_ACCEPT}, MANIFEST_BODY_CAP, batch, missing=check)
            if reply.status == 404:
                return None
            document = json_object(reply.body)
            if document is None or (check and not DIGEST.match(reply.headers.get("Docker-Content-Digest") or "")):
                raise _Unclean()
            return read_manifest(
                reply.body,
                document,
                host=self.host,
                repository=repository,
                reference=reference,
                content_type=reply.headers.get("Content-Type") or "",
                digest_header=reply.headers.get("Docker-Content-Digest") or "",
            )

        return self._call(get)

    def blob_json(self, repository: str, digest: str) -> object:
        """A small JSON blob (an image config) checked against its digest, or :data:`UNKNOWN`."""

        def get() -> dict[str, Any]:
            from ._auth import BLOB_JSON_CAP, content_matches, json_object

            reply = self._get(repository, f"/v2/{repository}/blobs/{digest}", {}, BLOB_JSON_CAP)
            document = json_object(reply.body)
            if document is None or not content_matches(reply.body, digest):
                raise _Unclean()
            return document

        return self._call(get)

    def close(self) -> None:
        with self._guard:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()

    def _call(self, work: Callable[[], _T]) -> _T | object:
        """Run one call under the budget; whatever goes wrong is :data:`UNKNOWN`, never an exception."""
        with self._lock:
            with self._guard:
                self._expired = False
            self._at = time.monotonic() + self._budget
            deadline = WATCHDOG.arm(self._at, self._expire)
            try:
                return work()
            except Exception:  # the full client answers (and explains) whatever this path does not judge
                self.close()
                return UNKNOWN
            finally:
                WATCHDOG.disarm(deadline)
                if self._expired:
                    self.close()  # the next call starts on fresh connections

    def _expire(self) -> None:
        """The budget is spent: shut the sockets, so a read blocked on a dripping server returns now."""
        with self._guard:
            self._expired = True
            sockets = [c.sock for c in self._connections.values() if c.sock is not None]
        for sock in sockets:
            with suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the OS socket under any TLS layer

    # -- the registry's endpoint and credentials ---------------------------------------------------
    def _known_endpoint(self) -> Endpoint:
        """What this run's warm-up or an earlier process learnt (the full client's rules apply), else ``GET /v2/``."""
        if self._endpoint is None:
            warm = None if self._warming else _warmed(self._warm_key)
            if warm is not None:
                warm.ready.wait(max(min(warm.deadline, self._at) - time.monotonic(), 0.0))  # never slower than asking
            if warm is not None and warm.endpoint is not None:
                self._endpoint = warm.endpoint
                if self._fetches:  # the run's first check picks a connection before its helpers do
                    self._connection(_origin(warm.endpoint.base_url), wait=False)
            else:
                self._endpoint = self._cache.usable_endpoint(insecure=self._insecure) or self._ping()
        return self._endpoint

    def _ping(self) -> Endpoint:
        """``GET /v2/``: https, then plain http where the full client would fall back to it; the challenge is kept."""
        from ._auth import read_challenge

        schemes = ("https", "http") if self._insecure else ("https",)
        for scheme in schemes:
            base = f"{scheme}://{self.api_host}"
            try:
                reply = self._send("GET", base + "/v2/", {}, keep={200, 401})
            except (OSError, http.client.HTTPException):
                if scheme == schemes[-1]:
                    raise
                continue  # a plain-HTTP registry refuses the TLS handshake
            if reply.status == 200:
                return Endpoint(base, "none", {})  # open: pinged each run, as the full client does
            header = ", ".join(reply.headers.get_all("WWW-Authenticate") or [])  # joined like httpx joins them
            challenge = read_challenge(header, host=self.host)
            if challenge is None or challenge.scheme not in ("basic", "bearer"):
                raise _Unclean()
            if challenge.scheme == "bearer":
                self._realm(challenge, base)  # a realm the full client would refuse is not remembered either
            self._cache.remember_endpoint(base, challenge.scheme, challenge.params)
            return Endpoint(base, challenge.scheme, challenge.params)
        raise _Unclean()

    def _realm(self, challenge: Challenge, base_url: str) -> Realm:
        from ._auth import token_realm

        sender = self._credential.username if self._credential is not None else None
        return token_realm(
            challenge, host=self.host, base_url=base_url, sender=sender, declared_insecure=self._declared_insecure
        )

    def _authorization(self, repository: str, batch: Callable[[], Iterable[str]] | None) -> dict[str, str]:
        endpoint = self._known_endpoint()
        if endpoint.scheme == "none":
            return {}
        if endpoint.scheme == "basic":
            if self._credential is None or self._credential.identity_token:
                raise _Unclean()
            return self._basic()
        wanted = repository_scope(repository, ("pull",))
        found = self._cache.find(scope_atoms([wanted]))
        if found is None and not self._fetches:
            raise _Unclean()
        token = found.value if found is not None else self._fetch_token(endpoint, wanted, batch)
        return {"Authorization": f"Bearer {token}"}

    def _fetch_token(self, endpoint: Endpoint, wanted: str, batch: Callable[[], Iterable[str]] | None) -> str:
        """A pull token for ``wanted`` (and the batch's repositories not yet covered), kept in the shared cache."""
        from ._auth import TOKEN_BODY_CAP, Challenge, covered, parse_token_response, scope_batches

        credential = self._credential
        if credential is not None and credential.identity_token:
            raise _Unclean()  # an OAuth2 refresh token is exchanged by the full client's form POST
        realm = urlsplit(self._realm(Challenge(endpoint.scheme, endpoint.params), endpoint.base_url).url)
        others = [repository_scope(r, ("pull",)) for r in (batch() if batch is not None else ())]
        scopes = [s for s in dict.fromkeys([wanted, *others]) if s == wanted or not self._covered(s)]
        scopes = scope_batches(scopes)[0]
        params = urlencode([("service", endpoint.params.get("service", "")), *(("scope", s) for s in scopes)])
        query = "&".join(q for q in (realm.query, params) if q)
        url = urlunsplit((realm.scheme, realm.netloc, realm.path or "/", query, ""))
        headers = self._basic() if credential is not None else {}  # anonymous tokens, as for public repositories
        alongside = self._connect_alongside(url)
        try:
            reply = self._send("GET", url, headers, keep={200}, cap=TOKEN_BODY_CAP)
        finally:
            if alongside is not None:
                alongside.join()  # within the call's budget: the watchdog closes what it outlives
        grant = parse_token_response(reply.body)
        atoms = covered(grant.token, scope_atoms(scopes))
        self._cache.add(grant.token, atoms, grant.lifetime)
        if not scope_atoms([wanted]) <= atoms:
            raise _Unclean()  # granted less than this check needs: the full client asks and says so
        return grant.token

    def _basic(self) -> dict[str, str]:
        assert self._credential is not None
        secret = self._credential.password.get_secret_value()
        return {"Authorization": f"Basic {encode_basic(self._credential.username, secret)}"}

    def _covered(self, wanted: str) -> bool:
        return self._cache.find(scope_atoms([wanted])) is not None

    # -- HTTP ----------------------------------------------------------------------------------------
    def _get(
        self,
        repository: str,
        path: str,
        headers: dict[str, str],
        cap: int,
        batch: Callable[[], Iterable[str]] | None = None,
        *,
        missing: bool = False,
    ) -> _Reply:
        """A GET of the registry's, following one redirect (object storage) without our credentials elsewhere.

        With ``missing``, the registry's own 404 is an answer too (and is returned as it came).
        """
        headers = {**headers, **self._authorization(repository, batch)}
        url = self._known_endpoint().base_url + path
        keep = {200, 404, *_REDIRECTS} if missing else {200, *_REDIRECTS}
        reply = self._send("GET", url, headers, keep=keep, cap=cap)
        if reply.status in (200, 404):
            return reply
        target = self._redirect(url, reply.headers.get("Location") or "")
        if _origin(target) != _origin(url):
            headers.pop("Authorization", None)  # credentials stay with the origin they were meant for
        return self._send("GET", target, headers, keep={200}, cap=cap)

    def _redirect(self, current: str, location: str) -> str:
        """Where a redirect may lead: https, or plain http on the same loopback host as an insecure registry."""
        if not location.strip():
            raise _Unclean()
        target = urljoin(current, location.strip())
        parts, here = urlsplit(target), urlsplit(current)
        if parts.scheme == "https" and parts.hostname:
            return target
        same_host = parts.hostname is not None and parts.hostname == here.hostname
        if parts.scheme == "http" and here.scheme == "http" and same_host and is_loopback(self.host):
            return target
        raise _Unclean()

    def _send(self, method: str, url: str, headers: dict[str, str], *, keep: set[int], cap: int = 0) -> _Reply:
        """One request; a status outside ``keep`` is unclean. A 200's body is read up to ``cap``, others' to 64 KiB."""
        parts = urlsplit(url)
        key = _origin(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": _USER_AGENT, **headers}
        connection = self._connection(key)
        left = self._at - time.monotonic()
        if left <= 0:
            raise _Unclean()
        connection.timeout = left
        if connection.sock is not None:
            connection.sock.settimeout(left)
        try:
            connection.request(method, target, headers=headers)
            response = connection.getresponse()
        except BaseException:
            self._drop(key)  # a kept-alive connection the server closed too: the full client tries again
            raise
        try:
            if response.status not in keep:
                raise _Unclean()
            body = b""
            if method != "HEAD":
                from ._auth import ERROR_BODY_CAP

                limit = cap if response.status == 200 else ERROR_BODY_CAP
                encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
                if response.status == 200 and encoding != "identity":
                    raise _Unclean()  # http.client does not decode: an encoded body is the full client's
                if response.length is not None and response.length > limit:
                    raise _Unclean()
                body = response.read(limit + 1)
                if len(body) > limit or not response.isclosed():
                    raise _Unclean()
            else:
                response.read()
        except BaseException:
            self._drop(key)
            raise
        return _Reply(response.status, response.headers, body)

    def _connection(self, key: _Origin, *, wait: bool = True) -> http.client.HTTPConnection:
        scheme, host, _ = key
        with self._guard:
            if self._expired:
                raise _Unclean()
            connection = self._connections.get(key)
            if connection is not None:
                return connection
            if not host or scheme not in ("http", "https") or _proxied(scheme, host):
                raise _Unclean()
        warm = self._take_warm(key, wait=wait)  # outside the guard: it may wait for one being opened
        with self._guard:
            connection = self._connections.get(key)
            if connection is None and not self._expired:
                connection = self._connections[key] = warm or self._new_connection(key)
                return connection
        if warm is not None:
            warm.close()
        if connection is None:
            raise _Unclean()  # the budget ran out meanwhile
        return connection

    def _new_connection(self, key: _Origin) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self._budget, context=self._context())
        return http.client.HTTPConnection(host, port, timeout=self._budget)

    def _take_warm(self, key: _Origin, *, wait: bool) -> http.client.HTTPConnection | None:
        """A connection this run's warm-up opened to ``key`` (see :meth:`warm_up`), if one is left or coming."""
        warm = None if self._warming else _warmed(self._warm_key)
        if warm is None or warm.endpoint is None:
            return None
        with _WARMED_LOCK:
            while not warm.connections.get(key):
                left = min(warm.deadline, self._at) - time.monotonic()
                if not wait or not warm.pending.get(key) or left <= 0:
                    return None
                _WARMED_LOCK.wait(left)
            connection = warm.connections[key].pop()
        if key == _origin(warm.endpoint.base_url):
            self._adopted[key] = warm.seconds
        return connection

    def _context(self) -> ssl.SSLContext:
        return context_for(DOCKER_CERTS_DIR, self.api_host, self._ca_file)

    def _drop(self, key: _Origin) -> None:
        with self._guard:
            connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def _connect(self) -> float | None:
        """Open the registry's connection (TCP, then TLS) within the current call's budget: :meth:`open`."""
        key = _origin(self._known_endpoint().base_url)
        connection = self._connection(key)
        if connection.sock is not None:
            return self._adopted.pop(key, None)  # a warm-up's connection reports the connect it timed
        return self._dial(key, connection)

    def _dial(self, key: _Origin, connection: http.client.HTTPConnection) -> float:
        """TCP, then TLS, for a connection held in :attr:`_connections`: the TCP connect's seconds."""
        started = time.monotonic()
        sock = socket.create_connection((connection.host, connection.port), max(self._at - started, 0.001))
        seconds = time.monotonic() - started
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as http.client's own connect
            if key[0] == "https":
                sock = self._context().wrap_socket(sock, server_hostname=connection.host)
        except BaseException:
            sock.close()
            raise
        with self._guard:
            if self._connections.get(key) is not connection:  # closed meanwhile (the budget ran out)
                sock.close()
                raise _Unclean()
            connection.sock = sock
        return seconds

    def _dial_new(self, key: _Origin) -> tuple[float, http.client.HTTPConnection]:
        """A connection to ``key``, opened (watched by the budget meanwhile) and then handed out (:meth:`warm_up`)."""
        connection = self._connection(key)
        seconds = self._dial(key, connection)
        with self._guard:
            self._connections.pop(key, None)
        return seconds, connection

    def _realm_origin(self, endpoint: Endpoint) -> _Origin:
        from ._auth import Challenge

        return _origin(self._realm(Challenge(endpoint.scheme, endpoint.params), endpoint.base_url).url)

    def _connect_alongside(self, realm_url: str) -> threading.Thread | None:
        """While a token is fetched from another host, open the registry's connection on a thread.

        Why: when the endpoint was remembered (a run after the token expired) no ping opened that
        connection, so the check after the login would wait for a TCP connect and a TLS handshake,
        two round trips across a network. ``None`` when it is open already or the realm is on the
        registry's own host (the token request then opens it).
        """
        key = _origin(self._known_endpoint().base_url)
        if _origin(realm_url) == key:
            return None
        with self._guard:
            connection = self._connections.get(key)
            if connection is not None and connection.sock is not None:
                return None

        def connect() -> None:
            with suppress(Exception):  # no connection yet: the check connects as it always did
                self._connect()

        thread = threading.Thread(target=connect, name="flyte-private-registry-connect", daemon=True)
        thread.start()
        return thread


def _origin(url: str) -> _Origin:
    """Scheme, host and port: what a kept-alive connection is kept under, and what a redirect must not change."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port
