"""The one interface every credential source implements, and the chain that asks them in order.

Shaped like go-containerregistry's ``authn``: a :class:`Keychain` resolves a registry to a
:class:`Credential` or says why it has none (:class:`Miss`). No ``None`` to forget to check,
and the "why not" is kept so ``explain`` can show it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

from .._errors import ConfigurationError, CredentialsError
from .._frozen import frozen
from .._reference import RegistryPrefix


def encode_basic(username: str, password: str) -> str:
    """base64 of ``user:password``: HTTP Basic's payload and docker's ``auth`` field."""
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def decode_basic(value: object) -> tuple[str, str] | None:
    """The inverse of :func:`encode_basic`; ``None`` for anything else (strict base64, a ':' inside).

    Takes whatever a config file holds: a non-string or non-ASCII value is ``None`` too, not an error.
    """
    if not isinstance(value, str):
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError and non-ASCII text are all ValueErrors
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class Secret:
    """A password or token that never shows itself in a repr, a str, a log line or a traceback.

    pydantic's ``SecretStr`` does the same, but importing ``pydantic.types`` costs ~35 ms CPU that
    ``import flytekit`` has not paid, on every ``pyflyte`` run that checks an image. Anything with
    ``get_secret_value()`` (a ``SecretStr``) is accepted wherever a ``Secret`` is.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a string, got {type(value).__name__}")
        self._value = value

    @classmethod
    def of(cls, value: Any) -> Secret:
        """``value`` as a ``Secret``: a ``str``, a ``Secret`` or anything with ``get_secret_value()``."""
        if isinstance(value, Secret):
            return value
        getter = getattr(value, "get_secret_value", None)
        return cls(getter() if callable(getter) else value)

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


@frozen(hide=("password",))
class Credential:
    """A username and secret for one registry, and where they came from.

    ``identity_token`` marks an OAuth2 refresh token (docker's ``identitytoken``, a helper's
    ``<token>`` user): it is exchanged at the token endpoint instead of sent as Basic auth.
    """

    username: str
    password: Secret  # a str or pydantic SecretStr is turned into a Secret
    source: str
    expires_at: datetime | None = None
    identity_token: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.password, Secret):
            object.__setattr__(self, "password", Secret.of(self.password))

    def expires_within(self, margin: timedelta, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        now = now or datetime.now(timezone.utc)
        return self.expires_at - margin <= now


@frozen()
class Miss:
    """A source that had nothing for this registry, with the reason in plain words."""

    source: str
    reason: str


@runtime_checkable
class Keychain(Protocol):
    """A credential source. ``name`` is what ``explain`` prints for it."""

    @property
    def name(self) -> str: ...

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss: ...


@frozen()
class Attempt:
    source: str
    outcome: str  # "used", "found", "missing", "error", "skipped"
    detail: str


@frozen()
class Resolution:
    """The answer to "which credentials, from where" for one registry, with every source's story."""

    resource: RegistryPrefix
    credential: Credential | None
    attempts: tuple[Attempt, ...]

    @property
    def source(self) -> str | None:
        return self.credential.source if self.credential else None

    def explain(self) -> str:
        head = (
            f"{self.resource}: using {self.credential.source} (user {self.credential.username!r})"
            if self.credential
            else f"{self.resource}: no credentials found (anonymous)"
        )
        lines = [head] + [f"  - {a.source}: {a.outcome}: {a.detail}" for a in self.attempts]
        return "\n".join(lines)

    def require(self) -> Credential:
        """The credential, or an error that lists every place that was looked at."""
        if self.credential is not None:
            return self.credential
        tried = "\n".join(f"  - {a.source}: {a.detail}" for a in self.attempts) or "  (no sources)"
        raise CredentialsError(
            f"no credentials for registry {self.resource}. Looked at:\n{tried}\n"
            "Pass username=/password_env= to PrivateRegistry, export the provider's env vars, "
            f"or run `docker login {self.resource.host}`."
        )


def resolve(keychains: Iterable[Keychain], resource: RegistryPrefix, *, exhaustive: bool = False) -> Resolution:
    """Ask each keychain in order; the first credential wins.

    With ``exhaustive`` every source is consulted (for ``explain``) and configuration errors are
    recorded rather than raised, so one broken source does not hide what the others would say.
    """
    winner: Credential | None = None
    attempts: list[Attempt] = []
    for keychain in keychains:
        if winner is not None and not exhaustive:
            attempts.append(Attempt(keychain.name, "skipped", "not consulted: an earlier source answered"))
            continue
        try:
            answer = keychain.resolve(resource)
        except ConfigurationError as err:
            if not exhaustive:
                raise
            attempts.append(Attempt(keychain.name, "error", str(err)))
            continue
        if isinstance(answer, Miss):
            attempts.append(Attempt(answer.source, "missing", answer.reason))
        elif winner is None:
            winner = answer
            attempts.append(Attempt(answer.source, "used", f"user {answer.username!r}"))
        else:
            attempts.append(Attempt(answer.source, "found", f"user {answer.username!r}, but an earlier source wins"))
    return Resolution(resource, winner, tuple(attempts))
