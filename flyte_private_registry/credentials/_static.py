"""Credentials the user wrote down: explicit values, or the names of env vars that hold them.

These sources are strict. A named env var that is unset is a configuration error, not a miss:
the user said where the secret is, so silently falling back to another source would hide a typo.
"""

from __future__ import annotations

import os

from .._errors import MissingEnvironmentVariable
from .._reference import RegistryPrefix
from ._base import Credential, Miss, Secret


class StaticKeychain:
    """Explicit ``username=``/``password=`` (or a token with a fixed user)."""

    def __init__(self, username: str, password: Secret, source: str = "explicit username/password") -> None:
        self._credential = Credential(username=username, password=password, source=source)

    @property
    def name(self) -> str:
        return self._credential.source

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        return self._credential


class EnvKeychain:
    """Username and password read from env vars at resolve time (so CI can set them late).

    Either side may be a literal instead of a variable name: ``username_literal`` for tokens whose
    user is fixed (``oauth2accesstoken``, ``AWS``), ``password_literal`` for an explicit password
    next to a username from the environment.
    """

    def __init__(
        self,
        *,
        password_env: str | None = None,
        username_env: str | None = None,
        username_literal: str | None = None,
        password_literal: Secret | None = None,
        strict: bool = True,
        label: str | None = None,
    ) -> None:
        if (password_env is None) == (password_literal is None):
            raise ValueError("EnvKeychain needs exactly one of password_env= and password_literal=")
        self.password_env = password_env
        self.password_literal = password_literal
        self.username_env = username_env
        self.username_literal = username_literal
        self.strict = strict
        parts = [v for v in (username_env, password_env) if v]
        explicit = " + explicit password" if password_literal is not None else ""
        self._name = label or f"env {'/'.join(parts)}{explicit}"

    @property
    def name(self) -> str:
        return self._name

    def _read(self, variable: str, resource: RegistryPrefix, role: str) -> str | None:
        value = os.environ.get(variable, "")
        if value:
            return value
        if self.strict:
            raise MissingEnvironmentVariable(variable, str(resource), role)
        return None

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        username = self.username_literal
        if self.username_env:
            username = self._read(self.username_env, resource, "username") or None
            if username is None:
                return Miss(self.name, f"{self.username_env} is not set")
        if self.password_literal is not None:
            secret = self.password_literal
        else:
            assert self.password_env is not None
            password = self._read(self.password_env, resource, "password")
            if password is None:
                return Miss(self.name, f"{self.password_env} is not set")
            secret = Secret(password)
        if username is None:
            return Miss(self.name, f"{self.password_env or 'the password'} is set but no username is known for it")
        return Credential(username=username, password=secret, source=self.name)
