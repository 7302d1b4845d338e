"""What registries and token services say, read without httpx: challenges, realms, token answers, manifests.

Why a module of its own: the full client (:mod:`._client`) and the stdlib quick path
(:mod:`._quick`) must judge a challenge, a token endpoint and a token answer by the same rules. A
second copy would drift, and the quick path must never send a credential where the full client
would refuse to. Everything here is pure; a problem is a :class:`RegistryError` whose text holds
no secret (callers add who asked and scrub), which the quick path turns into "ask the full client".
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .._errors import RegistryError
from .._frozen import frozen
from ._spec import DIGEST, INDEX_TYPES

#: Body caps: an error body is only mined for a message, a token answer is a few KiB of JSON.
ERROR_BODY_CAP = 64 * 1024
TOKEN_BODY_CAP = 1024 * 1024
#: Manifests and image configs are JSON; distribution itself refuses manifests over 4 MiB.
MANIFEST_BODY_CAP = 4 * 1024 * 1024
BLOB_JSON_CAP = 4 * 1024 * 1024
#: Scope parameters per token request: several repositories in one request, the URL kept under ~8 KiB.
MAX_SCOPE_CHARS = 6000
_DEFAULT_TOKEN_SECONDS = 60.0
_MAX_TOKEN_SECONDS = 24 * 3600.0
_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_SCHEME = re.compile(rf"({_TCHAR}+)(?:[ \t]+|$)")
_PARAM = re.compile(rf'({_TCHAR}+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^",\s]+))')
_NEXT_CHALLENGE = re.compile(rf"{_TCHAR}+[ \t]+{_TCHAR}+[ \t]*=")
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


# -- challenges -----------------------------------------------------------------------------------
@frozen(factories={"params": dict})
class Challenge:
    """A parsed ``WWW-Authenticate`` header (scheme lower-cased; ``none`` when the API is open)."""

    scheme: str
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str | None, *, host: str = "") -> Challenge:
        """RFC 7235's first challenge; a header we cannot read is a :class:`RegistryError` naming the problem."""
        text = (header or "").strip()
        if not text:
            return cls("none")

        def malformed(problem: str) -> NoReturn:
            raise RegistryError(
                f"registry {host or '(unknown)'} sent a malformed WWW-Authenticate header ({problem}): {text[:120]!r}",
                host=host,
            )

        match = _SCHEME.match(text)
        if match is None:
            malformed("it does not start with an auth scheme")
        scheme, pos, params = match.group(1).lower(), match.end(), {}
        while pos < len(text):
            while pos < len(text) and text[pos] in " \t,":
                pos += 1
            if pos >= len(text):
                break
            param = _PARAM.match(text, pos)
            if param is None:
                if params and _NEXT_CHALLENGE.match(text, pos):
                    break  # a second challenge (several headers joined by ", "): the first one wins
                malformed(f"unreadable parameter at character {pos}")
            name = param.group(1).lower()
            if name in params:
                malformed(f"parameter {name!r} appears twice")
            quoted = param.group(2)
            params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else param.group(3)
            pos = param.end()
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if pos < len(text) and text[pos] != ",":
                malformed(f"expected ',' after parameter {name!r} at character {pos}")
        return cls(scheme, params)


def read_challenge(header: str | None, *, host: str) -> Challenge | None:
    """A 401's challenge; ``None`` when there is none (a refusal, not an open door).

    Malformed headers and Bearer challenges without a realm are :class:`RegistryError`.
    """
    if header is None or not header.strip():
        return None
    challenge = Challenge.parse(header, host=host)
    if challenge.scheme == "bearer" and not challenge.params.get("realm"):
        raise RegistryError(
            f"registry {host} sent a malformed WWW-Authenticate header (a Bearer challenge without a realm): "
            f"{header.strip()[:120]!r}",
            host=host,
        )
    return challenge


# -- the token endpoint ---------------------------------------------------------------------------
@frozen()
class Realm:
    """A Bearer challenge's token endpoint, checked by :func:`token_realm`."""

    url: str
    scheme: str
    host: str  # IPv6 literals without brackets
    port: int | None  # ``None`` for the scheme's default port

    @property
    def origin(self) -> str:
        """``host:port`` as users write it, so two services on one host are told apart."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host


def token_realm(
    challenge: Challenge, *, host: str, base_url: str | None, sender: str | None, declared_insecure: bool
) -> Realm:
    """The challenge's realm, refused if it is not an http(s) URL or would carry a secret in clear text.

    ``sender`` names who would log in (``None``: anonymous, nothing to protect); a plain-http realm
    of an https registry gets no credentials unless the registry was declared insecure.
    """
    realm = challenge.params.get("realm", "")
    try:
        parts = urlsplit(realm)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise not_a_url(host, realm)
    found = Realm(realm, parts.scheme, parts.hostname, None if port == _DEFAULT_PORTS[parts.scheme] else port)
    https_registry = (base_url or "").startswith("https://")
    if found.scheme == "http" and sender is not None and https_registry and not declared_insecure:
        raise RegistryError(
            f"registry {host} (https) sends logins to a plain-http token service {found.origin}; "
            f"refusing to send {sender}'s credentials unencrypted. Declare the registry "
            "insecure=True only if that network is trusted.",
            host=host,
        )
    return found


def not_a_url(host: str, realm: str) -> RegistryError:
    return RegistryError(f"registry {host} sent a Bearer challenge whose realm {realm[:120]!r} is not a URL", host=host)


def scope_batches(scopes: list[str]) -> list[list[str]]:
    """Scopes grouped so that each token request's URL stays under :data:`MAX_SCOPE_CHARS`."""
    batches: list[list[str]] = []
    size = 0
    for item in scopes:
        if not batches or size + len(item) > MAX_SCOPE_CHARS:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += len(item) + 7  # "&scope="
    return batches


# -- token answers --------------------------------------------------------------------------------
@frozen(hide=("token", "refresh_token"))
class TokenGrant:
    """What a token service answered: the token, how long to trust it, and any refresh token (to scrub)."""

    token: str
    lifetime: float
    refresh_token: str | None = None


def parse_token_response(body: bytes, *, service: str = "token service") -> TokenGrant:
    """Read a token endpoint's JSON; anything that is not a usable token is a :class:`RegistryError`."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise RegistryError(f"{service} did not answer JSON") from None
    if not isinstance(payload, dict):
        raise RegistryError(f"{service} answered JSON {type(payload).__name__}, not an object with a token")
    token = payload.get("token") or payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise RegistryError(f"{service} answered without a token (keys: {sorted(map(str, payload))[:8]})")
    if not _HEADER_SAFE.match(token) or len(token) > TOKEN_BODY_CAP:
        raise RegistryError(f"{service} answered a token that cannot be sent in an HTTP header")
    raw = payload.get("expires_in")
    lifetime = _DEFAULT_TOKEN_SECONDS
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw) and raw > 0:
        lifetime = min(float(raw), _MAX_TOKEN_SECONDS)
    refresh = payload.get("refresh_token")
    return TokenGrant(token, lifetime, refresh if isinstance(refresh, str) and refresh else None)


def granted_actions(token: str, repository: str) -> frozenset[str] | None:
    """Actions a JWT grants on ``repository``; ``None`` for opaque tokens (cannot tell)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, RecursionError):
        return None
    access = claims.get("access") if isinstance(claims, dict) else None
    if not isinstance(access, list):
        return None
    actions: set[str] = set()
    for entry in access:
        if isinstance(entry, dict) and entry.get("type") == "repository" and entry.get("name") == repository:
            listed = entry.get("actions")
            if isinstance(listed, list):
                actions.update(a for a in listed if isinstance(a, str))
    return frozenset(actions)


def covered(token: str, asked: frozenset[str]) -> frozenset[str]:
    """What a token may be used for: what was asked, narrowed to what a JWT says it grants.

    A token service may answer 200 with less than asked (some repositories of a batch, or pull
    without push); remembering only the granted part sends those repositories their own request.
    """
    narrowed = set()
    for atom in asked:
        kind, _, rest = atom.partition(":")
        name, _, action = rest.rpartition(":")
        if kind != "repository":
            narrowed.add(atom)
            continue
        granted = granted_actions(token, name)
        if granted is None:
            return asked  # opaque token: cannot tell, trust the request (a refusal later sends it again)
        if action in granted:
            narrowed.add(atom)
    return frozenset(narrowed)


# -- manifests and blobs --------------------------------------------------------------------------
@frozen()
class Manifest:
    """A manifest as the registry served it: media type, content digest and the parsed JSON.

    ``is_index`` tells an OCI index / Docker manifest list (one entry per platform) from a
    single-platform manifest, whose platform is in its config blob.
    """

    media_type: str
    digest: str
    document: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or (not self.media_type and "manifests" in self.document)


def json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def content_matches(body: bytes, digest: str) -> bool:
    """Content addressing: a sha256 digest must be the body's hash (other algorithms are not checked)."""
    return not digest.startswith("sha256:") or "sha256:" + hashlib.sha256(body).hexdigest() == digest


def read_manifest(
    body: bytes,
    document: dict[str, Any],
    *,
    host: str,
    repository: str,
    reference: str,
    content_type: str,
    digest_header: str,
) -> Manifest:
    """The manifest a 200 answer carried; a body that does not hash to the digest asked for (or sent) is an error."""
    computed = "sha256:" + hashlib.sha256(body).hexdigest()
    header = digest_header.strip()
    expected = reference if DIGEST.match(reference) else header
    if expected.startswith("sha256:") and expected != computed:
        raise RegistryError(
            f"registry {host} served a manifest for {repository}:{reference} whose content hashes "
            f"to {computed}, not {expected}: a proxy or cache is serving other content",
            host=host,
        )
    media_type = content_type.split(";")[0].strip()
    if media_type not in INDEX_TYPES and not media_type.startswith("application/vnd."):
        media_type = str(document.get("mediaType") or "")
    return Manifest(media_type, header if DIGEST.match(header) else computed, document)
