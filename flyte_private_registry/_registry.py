"""``PrivateRegistry``: one declaration that the push path, the helper and the pull path all read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from . import _catalog
from ._errors import ConfigurationError
from ._pull import PullSide
from ._reference import ImageReference, InvalidReference, RegistryPrefix
from .credentials import DockerConfigKeychain, EnvKeychain, Keychain, Resolution, StaticKeychain, resolve
from .providers import GenericProvider, Provider, provider_for_host
from .providers._constructors import ProviderConstructors

if TYPE_CHECKING:
    from ._distribution import RegistryClient

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_arguments(data: dict[str, Any]) -> None:
    """Reject bad declarations with a plain ``ConfigurationError`` (pydantic would wrap it)."""
    try:
        data["prefix"] = str(RegistryPrefix.parse(data.get("prefix", "")))
    except InvalidReference as err:
        raise ConfigurationError(str(err)) from None
    prefix = data["prefix"]
    for key in ("username_env", "password_env", "pull_password_env"):
        value = data.get(key)
        if value is not None and not _ENV_NAME.match(value):
            raise ConfigurationError(f"{key}={value!r} for {prefix} is not an environment variable name")
    if data.get("password") is not None and data.get("password_env") is not None:
        raise ConfigurationError(f"{prefix}: give password= or password_env=, not both")
    if data.get("username") is not None and data.get("username_env") is not None:
        raise ConfigurationError(f"{prefix}: give username= or username_env=, not both")
    has_user = data.get("username") is not None or data.get("username_env") is not None
    has_password = data.get("password") is not None or data.get("password_env") is not None
    if has_password and not has_user:
        raise ConfigurationError(f"{prefix}: a password was given without username= or username_env=")
    if has_user and not has_password:
        which = "username_env=" if data.get("username_env") is not None else "username="
        raise ConfigurationError(f"{prefix}: {which} needs password= or password_env= next to it")
    has_pull_password = data.get("pull_password") is not None or data.get("pull_password_env") is not None
    if data.get("pull_password") is not None and data.get("pull_password_env") is not None:
        raise ConfigurationError(f"{prefix}: give pull_password= or pull_password_env=, not both")
    if has_pull_password != (data.get("pull_username") is not None):
        raise ConfigurationError(
            f"{prefix}: a read-only pull credential needs both pull_username= and pull_password(_env)="
        )
    secret = data.get("pull_secret")
    if secret is not None and (len(secret) > 253 or not _K8S_NAME.match(secret)):
        raise ConfigurationError(
            f"pull_secret={secret!r} for {prefix} is not a Kubernetes object name "
            "(lower-case letters, digits, '-' and '.', starting and ending alphanumeric)"
        )
    ca_file = data.get("ca_file")
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigurationError(f"ca_file {ca_file} for {prefix} does not exist")


class PrivateRegistry(ProviderConstructors, PullSide, BaseModel):
    """A registry prefix whose images need credentials to push and a pull secret to run.

    Constructing one declares it: every ImageSpec whose ``registry`` falls under ``prefix`` is
    built with these credentials (the longest declared prefix wins). Credentials are looked up
    in this order: explicit ``username``/``password``, the env vars named by ``username_env``/
    ``password_env``, extra ``keychains``, the provider's own sources, then the docker config.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    prefix: str
    username: str | None = None
    password: SecretStr | None = None
    username_env: str | None = None
    password_env: str | None = None
    pull_secret: str | None = None
    pull_username: str | None = None
    pull_password: SecretStr | None = None
    pull_password_env: str | None = None
    provider: Provider = Field(default_factory=GenericProvider)
    insecure: bool = False
    ca_file: Path | None = None
    builder: str | None = None
    keychains: tuple[Keychain, ...] = ()

    def __init__(self, prefix: str | None = None, /, **data: Any) -> None:
        if prefix is not None:
            data["prefix"] = prefix
        _check_arguments(data)
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _infer_provider(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("provider") is None and data.get("prefix"):
            data = {**data, "provider": provider_for_host(RegistryPrefix.parse(data["prefix"]).host)}
        return data

    def model_post_init(self, context: Any) -> None:
        _catalog.CATALOG.declare(self)

    # -- naming ------------------------------------------------------------------------------
    @property
    def registry(self) -> str:
        """The string to pass as ``ImageSpec(registry=...)``."""
        return self.prefix

    @property
    def reference(self) -> RegistryPrefix:
        return RegistryPrefix.parse(self.prefix)

    @property
    def host(self) -> str:
        return self.reference.host

    def repository(self, name: str) -> str:
        """Repository path of image ``name`` under this prefix (what the v2 API calls the name)."""
        path = self.reference.path
        return f"{path}/{name}" if path else name

    def covers(self, image: str) -> bool:
        """True when an image reference (or registry/name) lies under this prefix."""
        ref = ImageReference.parse(image)
        return self.reference.covers(ref.host, ref.repository)

    # -- credentials -------------------------------------------------------------------------
    def all_keychains(self) -> list[Keychain]:
        chain: list[Keychain] = []
        if self.username is not None and self.password is not None:
            chain.append(StaticKeychain(self.username, self.password))
        elif self.username is not None or self.username_env is not None:  # validated: a password is given too
            chain.append(
                EnvKeychain(
                    username_env=self.username_env,
                    username_literal=self.username,
                    password_env=self.password_env,
                    password_literal=self.password,
                )
            )
        chain.extend(self.keychains)
        chain.extend(self.provider.keychains(self))
        chain.append(DockerConfigKeychain())
        return chain

    def pull_keychains(self) -> list[Keychain]:
        """Sources for the cluster's pull secret: a read-only credential first, then the push chain."""
        chain: list[Keychain] = []
        if self.pull_username is not None and self.pull_password is not None:
            chain.append(StaticKeychain(self.pull_username, self.pull_password, source="explicit pull credential"))
        elif self.pull_username is not None and self.pull_password_env is not None:
            chain.append(EnvKeychain(username_literal=self.pull_username, password_env=self.pull_password_env))
        chain.extend(self.provider.pull_keychains(self))
        # A push-only source (a CI job token) dies with the job: never let it become a pull secret.
        return chain + [k for k in self.all_keychains() if not getattr(k, "push_only", False)]

    def resolve_pull(self, *, exhaustive: bool = False) -> Resolution:
        """The credential to put in the cluster's pull secret (prefers read-only ones)."""
        return resolve(self.pull_keychains(), self.reference, exhaustive=exhaustive)

    def resolve(self, *, exhaustive: bool = False) -> Resolution:
        """Which credential, from where; raises only for a broken declaration (missing env var)."""
        return resolve(self.all_keychains(), self.reference, exhaustive=exhaustive)

    def explain(self) -> str:
        """Every source's answer for this registry, secrets left out."""
        return self.resolve(exhaustive=True).explain()

    def client(self, *, actions: tuple[str, ...] = ("pull",), resolution: Resolution | None = None) -> RegistryClient:
        """A :class:`RegistryClient` logged in with the resolved credential (anonymous if none)."""
        from ._distribution import RegistryClient

        resolution = resolution or self.resolve()
        return RegistryClient(
            self.host,
            resolution.credential,
            insecure=self.insecure,
            ca_file=self.ca_file,
            actions=actions,
            refusal_hint=self.provider.refusal_hint,
        )
