"""Every error a user can hit, in one hierarchy so callers can catch by intent.

    FlytePrivateRegistryError
    ├── ConfigurationError (also ValueError)   bad prefix, bad config file, missing env var
    │   └── MissingEnvironmentVariable
    ├── CredentialsError                        no credential source answered for a registry
    ├── RegistryError                           the registry could not be reached or answered oddly
    │   ├── AuthenticationError                 the registry refused the user (HTTP 401)
    │   ├── AuthorizationError                  the user is known but lacks pull/push (403, reduced scope)
    │   └── RegistryUnavailable                 unreachable, timed out, or 429/5xx still after the retries
    ├── PushVerificationError                   a build "succeeded" but the tag is not in the registry
    ├── MissingExtra (also ImportError)         an optional dependency (the kubernetes extra) is not installed
    ├── ClusterError                            the Kubernetes API refused to create or update a pull-side object
    └── PreflightError                          the cluster cannot pull an image (missing Secret, bad entry, ...)

Messages name the registry, the user and the credential source, and say what to do.
They never contain a secret: every message that could echo server text is scrubbed.

Every class is also a ``click.ClickException``: pyflyte hands those back to click, which prints
them as one ``Error:`` block, so our errors read like pyflyte's own instead of ending a 60-line
traceback. ``pyflyte -v`` (or ``FLYTE_PRIVATE_REGISTRY_VERBOSE=1``) puts the traceback back.
"""

from __future__ import annotations

import logging
import os
import traceback

import click

ENV_VERBOSE = "FLYTE_PRIVATE_REGISTRY_VERBOSE"


def _verbose() -> bool:
    """pyflyte's ``-v`` lowers flytekit's logger to WARNING or below; without it, pyflyte sets CRITICAL."""
    if os.environ.get(ENV_VERBOSE, "") not in ("", "0"):
        return True
    return logging.getLogger("flytekit").getEffectiveLevel() <= logging.WARNING


class FlytePrivateRegistryError(click.ClickException):
    """Base class; catch this to handle anything the library raises on purpose."""

    def format_message(self) -> str:
        """What click prints after ``Error:``; the traceback too when the user asked for verbose output."""
        message = super().format_message()
        if self.__traceback__ is not None and _verbose():
            trace = "".join(traceback.format_exception(type(self), self, self.__traceback__))
            return f"{trace}\n{message}"
        return message


class ConfigurationError(FlytePrivateRegistryError, ValueError):
    """The user's declaration is wrong; raised before anything slow happens."""


class MissingEnvironmentVariable(ConfigurationError):
    """A registry names an env var for its credentials, and the variable is unset or empty."""

    def __init__(self, variable: str, registry: str, role: str) -> None:
        self.variable = variable
        super().__init__(
            f"environment variable {variable} is not set; it holds the {role} for registry {registry}. "
            f"Export it (export {variable}=...) before running pyflyte, or pass the {role} another way."
        )


class CredentialsError(FlytePrivateRegistryError):
    """No credential source had anything for a registry that requires authentication."""


class RegistryError(FlytePrivateRegistryError):
    """The registry's HTTP API answered something the library cannot treat as yes or no."""

    def __init__(self, message: str, *, host: str = "", status: int | None = None) -> None:
        self.host = host
        self.status = status
        super().__init__(message)


class AuthenticationError(RegistryError):
    """The registry (or its token service) refused the credentials."""


class AuthorizationError(RegistryError):
    """The credentials are valid but not allowed to do what was asked (push, or pull)."""


class RegistryUnavailable(RegistryError):
    """The registry (or its token service) did not answer usefully in time: a network or server problem.

    Raised after the retries and the operation's deadline are spent; the CLI exits 3 for it,
    because the credentials were never judged.
    """


class PushVerificationError(FlytePrivateRegistryError):
    """The inner builder returned but the registry does not have the tag: never register such a task."""


class MissingExtra(FlytePrivateRegistryError, ImportError):
    """A feature needs an optional dependency; the message names the ``pip install`` that adds it."""

    def __init__(self, feature: str, extra: str = "kubernetes", module: str = "kubernetes", where: str = "") -> None:
        self.extra = extra
        super().__init__(
            f"{feature} needs the {module!r} package, which is not installed. "
            f"Install it with: pip install 'flyte-private-registry[{extra}]'{where}."
        )


class ClusterError(FlytePrivateRegistryError):
    """The Kubernetes API refused a write or read; the message names the object, never its data."""


class PreflightError(FlytePrivateRegistryError):
    """Raised by ``PreflightReport.raise_for_problems()``: at least one pod could not pull its image."""
