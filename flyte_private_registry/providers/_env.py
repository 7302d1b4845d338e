"""Env var conventions shared by providers: a token variable plus the variables (or fixed user) naming its user.

Unlike ``PrivateRegistry(password_env=...)``, a convention is never strict: an unset variable is a
:class:`~flyte_private_registry.credentials.Miss` with the variable's name, because the user did
not ask for it by name. A convention can also be *push only* (CI job tokens die with the job, so
``PrivateRegistry.pull_keychains`` leaves them out of pull secrets) and can apply only in some
places (a GitLab job token only inside GitLab CI, only for that instance's registry).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from .._reference import RegistryPrefix
from ..credentials import Credential, Miss, Secret

#: Returns ``None`` when a convention applies to a registry, else the reason it does not.
Applies = Callable[[RegistryPrefix], "str | None"]


def jwt_expiry(token: str) -> datetime | None:
    """The ``exp`` claim of a JWT-shaped token, unverified (only used to know when to refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), timezone.utc)
    except (ValueError, TypeError, KeyError, OverflowError):
        return None


def first_error(stderr: str) -> str:
    """The line of a CLI's stderr worth showing: the first ``ERROR`` line, else the first line (short)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if line.upper().startswith("ERROR")), lines[0] if lines else "")
    return chosen[:200]


class ConventionKeychain:
    """Credentials from a provider's well-known env vars, e.g. ``GHCR_TOKEN`` + ``GHCR_USERNAME``."""

    def __init__(
        self,
        *,
        token_env: str,
        username_envs: Sequence[str] = (),
        username: str | None = None,
        label: str | None = None,
        note: str | None = None,
        push_only: bool = False,
        applies: Applies | None = None,
        expires: Callable[[str], datetime | None] | None = None,
    ) -> None:
        self.token_env = token_env
        self.username_envs = tuple(username_envs)
        self.username = username
        #: Read by ``PrivateRegistry.pull_keychains``: never put this credential in a pull secret.
        self.push_only = push_only
        self._applies = applies
        self._expires = expires
        self._note = note
        if label is None:
            user = "/".join(self.username_envs) if self.username_envs else f"user {username}"
            label = f"env {token_env} ({user})"
        self._name = label

    @property
    def name(self) -> str:
        return self._name

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        if self._applies is not None:
            reason = self._applies(resource)
            if reason is not None:
                return Miss(self.name, reason)
        token = os.environ.get(self.token_env, "")
        if not token:
            return Miss(self.name, f"{self.token_env} is not set")
        user = next((os.environ[v] for v in self.username_envs if os.environ.get(v)), None) or self.username
        if not user:
            wanted = " or ".join(self.username_envs) or "a username"
            return Miss(self.name, f"{self.token_env} is set but {wanted} is not, so the token has no user")
        source = f"{self.name}; {self._note}" if self._note else self.name
        expires_at = self._expires(token) if self._expires else None
        return Credential(username=user, password=Secret(token), source=source, expires_at=expires_at)


class NoticeKeychain:
    """Never answers; tells ``explain`` why a present variable is deliberately not used here.

    Put in a provider's ``pull_keychains`` so the pull-secret explanation says, for instance, that
    ``CI_JOB_TOKEN`` was seen and left out because it dies with the job.
    """

    def __init__(self, variable: str, reason: str) -> None:
        self.variable = variable
        self.reason = reason

    @property
    def name(self) -> str:
        return f"env {self.variable} (not for pull secrets)"

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        if os.environ.get(self.variable):
            return Miss(self.name, f"{self.variable} is set but not used: {self.reason}")
        return Miss(self.name, f"{self.variable} is not set")
