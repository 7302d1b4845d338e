"""Azure Container Registry (``<name>.azurecr.io``, ``.azurecr.cn``, ``.azurecr.us``).

ACR accepts three kinds of login: the null-GUID user ``00000000-0000-0000-0000-000000000000`` with
a registry refresh token (``az acr login --expose-token``, about three hours), a service principal
(app id + secret, long-lived: the usual pull credential) and repository-scoped tokens or the
admin user (their own names). Sources, in order: ``ACR_USERNAME``/``ACR_PASSWORD``, ``ACR_TOKEN``,
``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET``, then the ``az`` CLI.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import TYPE_CHECKING, ClassVar

from .._errors import ConfigurationError
from .._reference import RegistryPrefix, canonical_host
from ..credentials import Credential, Miss, Secret
from ._base import Provider
from ._env import ConventionKeychain, first_error, jwt_expiry

if TYPE_CHECKING:
    from ..credentials import Keychain
    from ._base import RegistryView

ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
ACR_SUFFIXES = ("azurecr.io", "azurecr.cn", "azurecr.us")
_ACR_HOST = re.compile(
    r"^(?P<name>[a-z0-9]{5,50})(?P<label>-[a-z0-9]+)?\.(?P<suffix>azurecr\.(?:io|cn|us))\Z", re.ASCII
)
_NAME = re.compile(r"^[a-z0-9]{5,50}\Z", re.ASCII)
_TIMEOUT_SECONDS = 60.0


def acr_prefix(name: str) -> str:
    """``<name>.azurecr.io`` from a registry name, or a login server (``x.azurecr.cn/path``) as given."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError("acr() needs the registry name, e.g. 'myregistry' for myregistry.azurecr.io")
    value = name.strip().strip("/").lower()
    host, _, path = value.partition("/")
    if "." in host:
        if not _ACR_HOST.match(host):
            raise ConfigurationError(
                f"{name!r} is not an ACR login server: expected <name>.azurecr.io (or .azurecr.cn, .azurecr.us), "
                "where the name is 5-50 letters and digits"
            )
        return value
    if not _NAME.match(host):
        raise ConfigurationError(
            f"{name!r} is not an ACR registry name: 5-50 letters and digits (no hyphens), e.g. 'myregistry'"
        )
    return f"{host}.{ACR_SUFFIXES[0]}" + (f"/{path}" if path else "")


def registry_name(host: str) -> str | None:
    """The name ``az acr login --name`` expects, or ``None`` when ``host`` is not an ACR login server."""
    match = _ACR_HOST.match(canonical_host(host))
    return match.group("name") if match else None


class AzCliKeychain:
    """``az acr login --name NAME --expose-token``: a registry token for the identity ``az`` is logged in as."""

    @property
    def name(self) -> str:
        return "az acr login --expose-token"

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        registry = registry_name(resource.host)
        if registry is None:
            return Miss(self.name, f"{resource.host} is not an ACR login server (<name>.azurecr.io)")
        az = shutil.which("az")
        if az is None:
            return Miss(self.name, "az (the Azure CLI) is not on PATH")
        try:
            done = subprocess.run(
                [az, "acr", "login", "--name", registry, "--expose-token", "--output", "json"],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return Miss(self.name, f"az did not answer: {type(err).__name__}")
        if done.returncode != 0:
            return Miss(self.name, f"az failed: {first_error(done.stderr) or f'exit status {done.returncode}'}")
        try:
            token = json.loads(done.stdout)["accessToken"]
        except (ValueError, KeyError, TypeError):
            return Miss(self.name, "az answered something without an accessToken")
        if not isinstance(token, str) or not token:
            return Miss(self.name, "az answered an empty accessToken")
        return Credential(
            username=ACR_TOKEN_USER,
            password=Secret(token),
            source=f"{self.name} (user {ACR_TOKEN_USER})",
            expires_at=jwt_expiry(token),
        )


class AcrProvider(Provider):
    """ACR: registry tokens (hours) from env or ``az``, or service principal / repository token credentials."""

    kind: ClassVar[str] = "acr"
    short_lived: ClassVar[bool] = True

    @classmethod
    def from_host(cls, host: str) -> AcrProvider | None:
        return cls() if registry_name(host) is not None else None

    def keychains(self, registry: RegistryView) -> list[Keychain]:
        return [
            ConventionKeychain(token_env="ACR_PASSWORD", username_envs=("ACR_USERNAME",)),
            ConventionKeychain(token_env="ACR_TOKEN", username=ACR_TOKEN_USER, expires=jwt_expiry),
            ConventionKeychain(
                token_env="AZURE_CLIENT_SECRET",
                username_envs=("AZURE_CLIENT_ID",),
                label="env AZURE_CLIENT_ID/AZURE_CLIENT_SECRET (service principal)",
            ),
            AzCliKeychain(),
        ]

    def refusal_hint(self, action: str, status: int) -> str | None:
        if action.startswith("push") or status == 403:
            return (
                "ACR needs the AcrPush role on the registry to push (AcrPull to pull); registries with "
                "ABAC repository permissions need 'Container Registry Repository Writer'. A repository-scoped "
                "token needs a scope map with content/write."
            )
        return (
            f"ACR takes user {ACR_TOKEN_USER} with a token from `az acr login --name NAME --expose-token` "
            "(valid about three hours), a service principal's app id and secret, or a repository-scoped token; "
            "check which source `flyte-private-registry explain` shows."
        )
