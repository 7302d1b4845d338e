"""Bearer tokens and registry endpoints remembered across processes, so a second ``pyflyte`` run is one HEAD.

Why: every ``pyflyte`` run is a new process. Without a cache each one pings ``/v2/``, is told to
fetch a token, fetches it and sends the HEAD again: four requests (and a token-service login)
per registry before the first answer. Tokens live minutes (60 s by default, 300 s at most
registries), long enough to cover the next run of a edit-register loop.

What is kept, in ``$XDG_CACHE_HOME/flyte-private-registry/registry-tokens/`` (0700, ours):

- ``token-<key>.json`` per registry and credential: the bearer tokens, the scopes each was
  asked for and when each stops being used (``expires_in`` minus a margin). The key is a hash of
  the registry host and of the credential (user, password, kind), so another credential never
  finds these tokens and the file never holds the credential itself. Tokens are credentials: the
  file is 0600 and read only if it is a regular file of ours (:mod:`._private_dir`).
- ``endpoint-<key>.json`` per registry: the base URL (https, or http for an insecure registry)
  and the ``WWW-Authenticate`` challenge of ``GET /v2/``, so the ping is skipped next time. No
  secret in it. A stale one costs one failed request: the client then pings again.

Expired tokens are dropped whenever the file is read or written, files with no live token are
deleted, and a write sweeps temporary files left by a killed writer. Set
``FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE=0`` to keep tokens in memory only; deleting the directory
is always safe. No httpx here: this module is plain data and file handling.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._frozen import frozen
from ._private_dir import PrivateDir, user_cache_dir

if TYPE_CHECKING:
    from ..credentials import Credential

ENV_TOKEN_CACHE = "FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE"
#: A token is not sent once it has less than this left (a request in flight must not outlive it).
TOKEN_MARGIN_SECONDS = 10.0
#: Tokens kept per registry and credential (oldest expiry dropped first); bounds the file.
MAX_TOKENS = 64
#: An endpoint nobody refreshed in this long is forgotten (it is re-learnt with one ping).
ENDPOINT_TTL_SECONDS = 30 * 24 * 3600.0
_VERSION = 1
_FILE_CAP = 1 << 20
_NAME = re.compile(r"(?:token|endpoint)-[0-9a-f]{40}\.json", re.ASCII)
_OFF = frozenset({"0", "false", "no", "off"})


def token_cache_dir() -> Path:
    """Where bearer tokens are kept: ``$XDG_CACHE_HOME/flyte-private-registry/registry-tokens``."""
    return user_cache_dir("registry-tokens")


def disk_cache_enabled() -> bool:
    """Off when ``$FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE`` is 0/false/no/off."""
    return os.environ.get(ENV_TOKEN_CACHE, "1").strip().lower() not in _OFF


def repository_scope(repository: str, actions: Iterable[str]) -> str:
    """``repository:NAME:pull,push``: what a token is asked for (:func:`scope_atoms` reads it back)."""
    return f"repository:{repository}:{','.join(actions)}"


def scope_atoms(scopes: Iterable[str]) -> frozenset[str]:
    """``repository:a/b:pull,push`` -> ``{repository:a/b:pull, repository:a/b:push}``: what a token must cover."""
    atoms: set[str] = set()
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        atoms.update(f"{kind}:{name}:{action}" for action in actions.split(",") if action)
    return frozenset(atoms)


def credential_id(credential: Credential | None) -> str:
    """A one-way name for a credential: tokens of one never go to another. Never the credential itself."""
    if credential is None:
        return "anonymous"
    kind = "identity-token" if credential.identity_token else "password"
    material = "\0".join(("flyte-private-registry/token-cache/v1", kind, credential.username))
    digest = hashlib.sha256(material.encode())
    digest.update(b"\0" + credential.password.get_secret_value().encode())
    return digest.hexdigest()


def _key(*parts: str) -> str:
    return hashlib.sha256(json.dumps(["v1", *parts]).encode()).hexdigest()[:40]


@frozen(hide=("value",))
class CachedToken:
    """A bearer token, the scope atoms it was asked for, and the wall-clock time it stops being used."""

    value: str
    atoms: frozenset[str]
    expires_at: float

    def fresh(self, now: float) -> bool:
        return now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {"token": self.value, "scopes": sorted(self.atoms), "expires_at": self.expires_at}

    @classmethod
    def from_json(cls, data: Any) -> CachedToken | None:
        if not isinstance(data, dict):
            return None
        value, atoms, expires = data.get("token"), data.get("scopes"), data.get("expires_at")
        if not isinstance(value, str) or not value or not isinstance(atoms, list):
            return None
        if not isinstance(expires, (int, float)) or isinstance(expires, bool) or not math.isfinite(expires):
            return None
        if not all(isinstance(a, str) for a in atoms):
            return None
        return cls(value, frozenset(atoms), float(expires))


@frozen()
class Endpoint:
    """What ``GET /v2/`` taught: the base URL and the challenge (scheme and its parameters)."""

    base_url: str
    scheme: str
    params: dict[str, str]


class TokenCache:
    """One registry and one credential: tokens in memory, backed by the shared file when enabled."""

    def __init__(self, host: str, credential: Credential | None, *, disk: bool | None = None) -> None:
        self.host = host
        self._token_name = f"token-{_key(host, credential_id(credential))}.json"
        self._endpoint_name = f"endpoint-{_key(host)}.json"
        self._tokens: list[CachedToken] = []
        self._rejected: set[str] = set()
        self._endpoint: Endpoint | None = None
        self._loaded = False
        self._lock = threading.Lock()
        enabled = disk_cache_enabled() if disk is None else disk
        self._files = PrivateDir(token_cache_dir(), _NAME.fullmatch) if enabled else None

    # -- reading ---------------------------------------------------------------------------
    def _load(self) -> None:
        """Read both files once per client (the first lookup); a bad file is a miss, never an error."""
        if self._loaded:
            return
        self._loaded = True
        if self._files is None:
            return
        with self._files.opened() as dir_fd:
            if dir_fd is None:
                return
            now = time.time()
            tokens = self._read_tokens(dir_fd, now)
            if tokens is not None and not tokens:
                self._files.unlink(dir_fd, self._token_name)  # nothing live in it: no token outlives its use
            self._tokens = tokens or []
            self._endpoint = self._read_endpoint(dir_fd, now)

    def _read_tokens(self, dir_fd: int, now: float) -> list[CachedToken] | None:
        """Live tokens in our file (``None`` if there is no readable file)."""
        assert self._files is not None
        data = _json(self._files.read(dir_fd, self._token_name, _FILE_CAP))
        if not isinstance(data, dict) or data.get("version") != _VERSION or data.get("registry") != self.host:
            return None
        entries = data.get("tokens")
        if not isinstance(entries, list):
            return None
        tokens = [CachedToken.from_json(entry) for entry in entries[:MAX_TOKENS]]
        return [t for t in tokens if t is not None and t.fresh(now) and t.value not in self._rejected]

    def _read_endpoint(self, dir_fd: int, now: float) -> Endpoint | None:
        assert self._files is not None
        data = _json(self._files.read(dir_fd, self._endpoint_name, _FILE_CAP))
        if not isinstance(data, dict) or data.get("version") != _VERSION or data.get("registry") != self.host:
            return None
        base, scheme, params, saved = data.get("base_url"), data.get("scheme"), data.get("params"), data.get("saved_at")
        if not isinstance(base, str) or base not in (f"https://{self.host}", f"http://{self.host}"):
            return None
        if scheme not in ("basic", "bearer") or not isinstance(params, dict):
            return None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
            return None
        if not isinstance(saved, (int, float)) or not (now - ENDPOINT_TTL_SECONDS < saved <= now + 60):
            return None
        return Endpoint(base, scheme, dict(params))

    def find(self, atoms: frozenset[str]) -> CachedToken | None:
        """A live token asked for (at least) ``atoms``; the one that lives longest."""
        now = time.time()
        with self._lock:
            self._load()
            live = [t for t in self._tokens if t.fresh(now) and atoms <= t.atoms]
        return max(live, key=lambda t: t.expires_at) if live else None

    def endpoint(self) -> Endpoint | None:
        with self._lock:
            self._load()
            return self._endpoint

    def usable_endpoint(self, *, insecure: bool) -> Endpoint | None:
        """The remembered endpoint, if a client may skip ``GET /v2/`` with it.

        Plain HTTP only where that client may fall back to it (``insecure``), and a Bearer
        challenge only with a realm to ask for tokens.
        """
        found = self.endpoint()
        if found is None or (found.base_url.startswith("http://") and not insecure):
            return None
        if found.scheme == "bearer" and not found.params.get("realm"):
            return None
        return found

    # -- writing ---------------------------------------------------------------------------
    def add(self, value: str, atoms: frozenset[str], lifetime: float) -> CachedToken:
        """Keep a token just granted (in memory, and merged into the file for the next process)."""
        token = CachedToken(value, atoms, time.time() + max(lifetime - TOKEN_MARGIN_SECONDS, 1.0))
        with self._lock:
            self._load()
            self._tokens = _newest([*self._tokens, token], time.time())
            mine = list(self._tokens)
        if self._files is not None:
            with self._files.opened() as dir_fd:
                if dir_fd is not None:
                    now = time.time()
                    theirs = self._read_tokens(dir_fd, now) or []  # other processes' tokens stay
                    merged = _newest([*theirs, *mine], now)
                    payload = {"version": _VERSION, "registry": self.host, "tokens": [t.to_json() for t in merged]}
                    self._files.write(dir_fd, self._token_name, json.dumps(payload).encode())
                    self._files.sweep(dir_fd, lambda name: self._stale(dir_fd, name, now))
        return token

    def discard(self, value: str) -> None:
        """The registry refused this token (revoked, or narrower than asked): never send it again."""
        with self._lock:
            self._rejected.add(value)
            self._tokens = [t for t in self._tokens if t.value != value]

    def remember_endpoint(self, base_url: str, scheme: str, params: dict[str, str]) -> None:
        """Keep what ``/v2/`` said (Basic and Bearer only: an open registry is pinged each time)."""
        if scheme not in ("basic", "bearer"):
            return
        endpoint = Endpoint(base_url, scheme, dict(params))
        with self._lock:
            self._load()
            unchanged = self._endpoint == endpoint
            self._endpoint = endpoint
        if unchanged or self._files is None:
            return
        with self._files.opened() as dir_fd:
            if dir_fd is not None:
                payload = {
                    "version": _VERSION,
                    "registry": self.host,
                    "base_url": base_url,
                    "scheme": scheme,
                    "params": params,
                    "saved_at": time.time(),
                }
                self._files.write(dir_fd, self._endpoint_name, json.dumps(payload).encode())

    def forget_endpoint(self) -> None:
        """The remembered endpoint did not answer as remembered: drop it (here and on disk)."""
        with self._lock:
            self._endpoint = None
        if self._files is not None:
            with self._files.opened() as dir_fd:
                if dir_fd is not None:
                    self._files.unlink(dir_fd, self._endpoint_name)

    def _stale(self, dir_fd: int, name: str, now: float) -> bool:
        """A token file with no live token, an unreadable file, or an endpoint nobody refreshed in a month."""
        assert self._files is not None
        data = _json(self._files.read(dir_fd, name, _FILE_CAP))
        if not isinstance(data, dict):
            return True
        if name.startswith("endpoint-"):
            saved = data.get("saved_at")
            return not isinstance(saved, (int, float)) or saved < now - ENDPOINT_TTL_SECONDS
        entries = data.get("tokens")
        if not isinstance(entries, list):
            return True
        return not any(t is not None and t.fresh(now) for t in map(CachedToken.from_json, entries[:MAX_TOKENS]))


def _newest(tokens: list[CachedToken], now: float) -> list[CachedToken]:
    """Live tokens, one per value, those living longest first, at most :data:`MAX_TOKENS`."""
    seen: dict[str, CachedToken] = {}
    for token in tokens:
        if token.fresh(now):
            seen[token.value] = token
    return sorted(seen.values(), key=lambda t: t.expires_at, reverse=True)[:MAX_TOKENS]


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None
