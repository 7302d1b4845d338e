"""``PrivateRegistry.ecr(...)``, ``.ghcr(...)``, ...: one-line declarations per provider.

Each builds the prefix from the provider's own vocabulary (account and region, owner, group
path, namespace, location/project/repository, registry name), validates it with a message that
names the expected form, and returns ``cls(prefix, provider=..., **kwargs)``: every other
``PrivateRegistry`` argument (``pull_secret=``, ``username=``/``password=``/``password_env=``,
``ca_file=``, ``builder=``, ...) passes through unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._errors import ConfigurationError
from .._reference import InvalidReference, RegistryPrefix

if TYPE_CHECKING:
    from ._ecr import Clock

# Each constructor imports its provider module itself: importing PrivateRegistry loads none of them.

_R = TypeVar("_R", bound="ProviderConstructors")


def _ecr_prefix(prefix: str | None, account_id: str | None, region: str | None, fips: bool) -> str:
    from ._ecr_hosts import ecr_host, parse_ecr_host

    if prefix is None:
        if account_id is None or region is None:
            raise ConfigurationError(
                "ecr() needs account_id= and region=, or a prefix such as "
                "'123456789012.dkr.ecr.us-east-1.amazonaws.com/team' or 'public.ecr.aws/<alias>'"
            )
        return ecr_host(account_id, region, fips=fips)
    if account_id is not None or region is not None or fips:
        raise ConfigurationError("ecr(): give a prefix or account_id=/region=/fips=, not both")
    try:
        parsed = RegistryPrefix.parse(prefix)
    except InvalidReference as err:
        raise ConfigurationError(str(err)) from None
    ecr = parse_ecr_host(parsed.host)
    if ecr.public and not parsed.path:
        raise ConfigurationError("ECR Public prefixes name the registry alias: 'public.ecr.aws/<alias>'")
    return str(parsed)


class ProviderConstructors:
    """Mixed into ``PrivateRegistry``; each classmethod builds a registry with its provider."""

    @classmethod
    def ecr(
        cls: type[_R],
        prefix: str | None = None,
        /,
        *,
        account_id: str | None = None,
        region: str | None = None,
        fips: bool = False,
        create_repository: bool = True,
        scan_on_push: bool | None = None,
        tag_mutability: Literal["MUTABLE", "IMMUTABLE", "mutable", "immutable"] | None = None,
        encryption: Literal["AES256", "KMS", "aes256", "kms"] | None = None,
        kms_key: str | None = None,
        profile: str | None = None,
        token_cache: bool = True,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> _R:
        """AWS ECR: ``ecr(account_id="123456789012", region="us-east-1")`` or ``ecr("<host>/team")``.

        Tokens come from boto3's default chain (``profile=`` to pick one). Missing repositories
        are created before the first push unless ``create_repository=False``, with the given
        ``scan_on_push``, ``tag_mutability`` and ``encryption``/``kms_key``.
        """
        from ._ecr import EcrProvider

        provider = EcrProvider(
            create_repository=create_repository,
            scan_on_push=scan_on_push,
            tag_mutability=tag_mutability,
            encryption=encryption,
            kms_key=kms_key,
            profile=profile,
            token_cache=token_cache,
            clock=clock,
        )
        return cls(_ecr_prefix(prefix, account_id, region, fips), provider=provider, **kwargs)  # type: ignore[call-arg]

    @classmethod
    def ghcr(cls: type[_R], owner: str, /, **kwargs: Any) -> _R:
        """GitHub Container Registry: ``ghcr("acme")`` is ``ghcr.io/acme``.

        Credentials: ``GHCR_TOKEN`` (+ ``GHCR_USERNAME``), or ``GITHUB_TOKEN`` + ``GITHUB_ACTOR`` in Actions.
        """
        from ._github import GhcrProvider, ghcr_prefix

        return cls(ghcr_prefix(owner), provider=GhcrProvider(), **kwargs)  # type: ignore[call-arg]

    @classmethod
    def gitlab(cls: type[_R], path: str, /, *, host: str | None = None, **kwargs: Any) -> _R:
        """GitLab: ``gitlab("group/sub/project")`` (registry.gitlab.com), or ``host="gitlab.example.com:5050"``."""
        from ._gitlab import GITLAB_COM_REGISTRY, GitLabProvider, gitlab_prefix

        host = GITLAB_COM_REGISTRY if host is None else host
        return cls(gitlab_prefix(path, host), provider=GitLabProvider(), **kwargs)  # type: ignore[call-arg]

    @classmethod
    def dockerhub(cls: type[_R], namespace: str, /, **kwargs: Any) -> _R:
        """Docker Hub: ``dockerhub("acme")`` is ``docker.io/acme`` (``DOCKERHUB_USERNAME``/``DOCKERHUB_TOKEN``)."""
        from ._dockerhub import DockerHubProvider, dockerhub_prefix

        return cls(dockerhub_prefix(namespace), provider=DockerHubProvider(), **kwargs)  # type: ignore[call-arg]

    @classmethod
    def gar(cls: type[_R], location: str, project: str, repository: str, /, **kwargs: Any) -> _R:
        """Google Artifact Registry: ``gar("us-central1", "my-project", "repo")``."""
        from ._gar import GarProvider, gar_prefix

        return cls(gar_prefix(location, project, repository), provider=GarProvider(), **kwargs)  # type: ignore[call-arg]

    @classmethod
    def acr(cls: type[_R], name: str, /, **kwargs: Any) -> _R:
        """Azure Container Registry: ``acr("myregistry")`` is ``myregistry.azurecr.io``."""
        from ._acr import AcrProvider, acr_prefix

        return cls(acr_prefix(name), provider=AcrProvider(), **kwargs)  # type: ignore[call-arg]
