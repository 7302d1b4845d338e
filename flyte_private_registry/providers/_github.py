"""GitHub Container Registry (ghcr.io): owner names, the Actions and PAT env vars, and what a refusal means.

``GITHUB_TOKEN`` in Actions lives as long as the job (24 h at most), so it may push but is kept
out of pull secrets; a classic personal access token in ``GHCR_TOKEN`` can do both.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from .._errors import ConfigurationError
from .._reference import canonical_host
from ._base import Provider
from ._env import ConventionKeychain, NoticeKeychain

if TYPE_CHECKING:
    from ..credentials import Keychain
    from ._base import RegistryView

GHCR_HOST = "ghcr.io"
#: GitHub user and organisation names: letters, digits, single hyphens inside, at most 39.
_OWNER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}\Z", re.ASCII)


def ghcr_prefix(owner: str) -> str:
    """``ghcr.io/<owner>[/<path>]`` with the owner lower-cased (GHCR refuses upper case)."""
    if not isinstance(owner, str) or not owner.strip():
        raise ConfigurationError("ghcr() needs the GitHub user or organisation that owns the packages, e.g. 'acme'")
    value = owner.strip().strip("/").lower()
    if value.startswith(GHCR_HOST + "/"):
        value = value[len(GHCR_HOST) + 1 :]
    first, _, rest = value.partition("/")
    if not _OWNER.match(first):
        raise ConfigurationError(
            f"{owner!r} is not a GitHub owner: expected a user or organisation name (letters, digits and "
            "single hyphens, at most 39 characters), optionally followed by /path, e.g. 'acme' or 'acme/ml'"
        )
    return f"{GHCR_HOST}/{value}" if rest else f"{GHCR_HOST}/{first}"


class GhcrProvider(Provider):
    """ghcr.io: ``GHCR_TOKEN`` (a PAT) or, in GitHub Actions, ``GITHUB_TOKEN`` with ``GITHUB_ACTOR``."""

    kind: ClassVar[str] = "ghcr"

    @classmethod
    def from_host(cls, host: str) -> GhcrProvider | None:
        return cls() if canonical_host(host) == GHCR_HOST else None

    def keychains(self, registry: RegistryView) -> list[Keychain]:
        return [
            ConventionKeychain(token_env="GHCR_TOKEN", username_envs=("GHCR_USERNAME", "GITHUB_ACTOR")),
            ConventionKeychain(
                token_env="GITHUB_TOKEN",
                username_envs=("GITHUB_ACTOR", "GHCR_USERNAME"),
                note="push only: an Actions token ends with the job, so it never goes into a pull secret",
                push_only=True,
            ),
        ]

    def pull_keychains(self, registry: RegistryView) -> list[Keychain]:
        return [
            NoticeKeychain(
                "GITHUB_TOKEN",
                "it expires with the workflow job; give the cluster a classic PAT with read:packages "
                "(pull_username=, pull_password_env=) or make the package public",
            )
        ]

    def refusal_hint(self, action: str, status: int) -> str | None:
        if action.startswith("push") or status == 403:
            return (
                "GHCR needs write:packages to push: a classic personal access token with the write:packages "
                "scope (fine-grained tokens cannot push packages), or in GitHub Actions GITHUB_TOKEN with "
                "`permissions: packages: write`. If the package already exists, it must also give this "
                "repository's workflows access (package settings -> Manage Actions access -> Write role); "
                "for an organisation with SAML SSO, authorise the PAT for it."
            )
        return (
            "GHCR accepts a classic personal access token (read:packages to pull, write:packages to push) "
            "with your GitHub username, or GITHUB_TOKEN with GITHUB_ACTOR in Actions; check GHCR_TOKEN "
            "and GHCR_USERNAME."
        )
