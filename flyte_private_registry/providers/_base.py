"""What a provider is: host knowledge plus credential sources, plugged into ``PrivateRegistry``.

A provider never has its own push or pull path. It contributes keychains (tried after the
user's explicit ones and before the docker config), a sentence for refusals, an optional step
before the first push (ECR creates repositories), and facts the pull side needs (are its
tokens short-lived, which keychain gives a read-only credential).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

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


class Provider:
    """Base class; subclasses set ``kind`` and override what differs for their registry.

    A plain class: most providers take no options, and the first pydantic model in a process
    costs ~35 ms of imports on every ``pyflyte`` run. A provider with options is also a pydantic
    model (``class EcrProvider(BaseModel, Provider)``), whose fields then check them.
    """

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

    def options(self) -> dict[str, Any]:
        """The options a config-file table holds for this provider (JSON values, defaults left out)."""
        return {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from pydantic import BaseModel  # loaded by flytekit already; this only names it

        fields = [name for name, hint in vars(cls).get("__annotations__", {}).items() if "ClassVar" not in str(hint)]
        if fields and not issubclass(cls, BaseModel):
            raise TypeError(
                f"{cls.__name__} declares options ({', '.join(fields)}) but is not a pydantic model, so nothing "
                f"would set or check them: write class {cls.__name__}(BaseModel, Provider), as EcrProvider is"
            )

    # Option-less providers: one value per class. A pydantic subclass's own methods come first.
    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"the {self.kind} provider takes no options, got {', '.join(sorted(options))}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GenericProvider(Provider):
    """Any registry that takes a username and password: Harbor, distribution, Nexus, Quay, ..."""

    kind: ClassVar[str] = "generic"
