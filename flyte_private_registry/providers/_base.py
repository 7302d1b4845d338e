"""What a provider is: host knowledge plus credential sources, plugged into ``PrivateRegistry``.

A provider never has its own push or pull path. It contributes keychains (tried after the
user's explicit ones and before the docker config), a sentence for refusals, an optional step
before the first push (ECR creates repositories), and facts the pull side needs (are its
tokens short-lived, which keychain gives a read-only credential).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from .._reference import RegistryPrefix
    from ..credentials import Credential, Keychain


class RegistryView(Protocol):
    """What a provider may read of the declaration it serves (``PrivateRegistry`` satisfies it).

    A protocol rather than an import: providers sit below the declaration, which builds them.
    """

    @property
    def prefix(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def reference(self) -> RegistryPrefix: ...


class Provider(BaseModel):
    """Base class; subclasses set ``kind`` and override what differs for their registry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str] = "generic"
    #: Tokens that die within hours (ECR, GAR, ACR, CI job tokens) must not become static Secrets.
    short_lived: ClassVar[bool] = False

    def keychains(self, registry: RegistryView) -> list[Keychain]:
        """Provider-native sources: env var conventions, cloud SDKs."""
        return []

    def pull_keychains(self, registry: RegistryView) -> list[Keychain]:
        """Sources of a read-only credential for the cluster's pull secret (empty: use the push one)."""
        return []

    def refusal_hint(self, action: str, status: int) -> str | None:
        """What to tell a user the registry refused: the scope, IAM action or setting to fix."""
        return None

    def prepare_push(self, registry: RegistryView, repository: str, credential: Credential | None) -> None:
        """Runs once per repository before a build pushes to it (ECR creates the repository)."""

    def describe(self) -> str:
        return self.kind


class GenericProvider(Provider):
    """Any registry that takes a username and password: Harbor, distribution, Nexus, Quay, ..."""

    kind: ClassVar[str] = "generic"
