"""GitLab container registry (gitlab.com or self-managed): CI job credentials, deploy tokens, PATs.

Inside a GitLab CI job, ``CI_REGISTRY_USER``/``CI_REGISTRY_PASSWORD`` (the job token under user
``gitlab-ci-token``) push to the instance's own registry; they die with the job, so they never
become a pull secret. A deploy token with ``read_registry`` is the pull credential; GitLab
exposes the one named ``gitlab-deploy-token`` to jobs as ``CI_DEPLOY_USER``/``CI_DEPLOY_PASSWORD``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, ClassVar

from .._errors import ConfigurationError
from .._reference import InvalidReference, RegistryPrefix, canonical_host, server_to_host
from ._base import Provider
from ._env import ConventionKeychain, NoticeKeychain

if TYPE_CHECKING:
    from ..credentials import Keychain
    from ._base import RegistryView

GITLAB_COM_REGISTRY = "registry.gitlab.com"
CI_JOB_USER = "gitlab-ci-token"
_JOB_TOKEN_NOTE = "push only: it dies with the job, so it never goes into a pull secret"
_GROUP = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?\Z", re.ASCII)


def gitlab_prefix(path: str, host: str = GITLAB_COM_REGISTRY) -> str:
    """``<registry host>/<group>/<subgroup>/<project>``, lower-cased (nested groups allowed)."""
    if not isinstance(path, str) or not path.strip("/ "):
        raise ConfigurationError("gitlab() needs a project or group path, e.g. 'group/sub/project'")
    clean = path.strip().strip("/").lower()
    for part in clean.split("/"):
        if not _GROUP.match(part):
            raise ConfigurationError(
                f"{path!r} is not a GitLab group/project path: expected 'group/project' or "
                "'group/subgroup/project' (letters, digits, '.', '_' and '-'; no leading or trailing punctuation)"
            )
    forms = "expected the GitLab registry's host[:port], e.g. 'registry.example.com' or 'gitlab.example.com:5050'"
    if not isinstance(host, str) or "/" in host.strip().strip("/"):
        raise ConfigurationError(f"host={host!r} is not a bare registry host: {forms}; the path goes first")
    try:
        registry_host = RegistryPrefix.parse(host.strip().lower()).host
    except InvalidReference:
        raise ConfigurationError(f"host={host!r} is not a registry host: {forms}") from None
    return f"{registry_host}/{clean}"


def _in_ci_for(resource: RegistryPrefix) -> str | None:
    """None when this job's CI credentials are for ``resource``'s registry, else why not."""
    if os.environ.get("GITLAB_CI") != "true":
        return "not inside GitLab CI (GITLAB_CI is not 'true')"
    ci_registry = os.environ.get("CI_REGISTRY")
    if ci_registry and server_to_host(ci_registry) != canonical_host(resource.host):
        return (
            f"CI_REGISTRY is {ci_registry}: this job's token is for that registry, not {resource.host}; "
            "use a deploy token or access token for another instance"
        )
    return None


class GitLabProvider(Provider):
    """GitLab's registry. Self-managed instances are declared with ``PrivateRegistry.gitlab(path, host=...)``."""

    kind: ClassVar[str] = "gitlab"

    @classmethod
    def from_host(cls, host: str) -> GitLabProvider | None:
        return cls() if canonical_host(host) == GITLAB_COM_REGISTRY else None

    def keychains(self, registry: RegistryView) -> list[Keychain]:
        return [
            ConventionKeychain(
                token_env="CI_REGISTRY_PASSWORD",
                username_envs=("CI_REGISTRY_USER",),
                label="GitLab CI env CI_REGISTRY_USER/CI_REGISTRY_PASSWORD (the job's CI_JOB_TOKEN)",
                note=_JOB_TOKEN_NOTE,
                push_only=True,
                applies=_in_ci_for,
            ),
            ConventionKeychain(
                token_env="CI_JOB_TOKEN",
                username=CI_JOB_USER,
                label=f"GitLab CI env CI_JOB_TOKEN (user {CI_JOB_USER})",
                note=_JOB_TOKEN_NOTE,
                push_only=True,
                applies=_in_ci_for,
            ),
            ConventionKeychain(token_env="GITLAB_DEPLOY_TOKEN", username_envs=("GITLAB_DEPLOY_USER",)),
            ConventionKeychain(token_env="GITLAB_TOKEN", username_envs=("GITLAB_USERNAME", "GITLAB_USER_LOGIN")),
        ]

    def pull_keychains(self, registry: RegistryView) -> list[Keychain]:
        return [
            ConventionKeychain(
                token_env="CI_DEPLOY_PASSWORD",
                username_envs=("CI_DEPLOY_USER",),
                label="GitLab CI env CI_DEPLOY_USER/CI_DEPLOY_PASSWORD (deploy token gitlab-deploy-token)",
            ),
            NoticeKeychain(
                "CI_JOB_TOKEN",
                "a job token dies with the job, so a pull secret made from it stops working minutes later; "
                "create a deploy token with read_registry (GITLAB_DEPLOY_USER/GITLAB_DEPLOY_TOKEN, or name it "
                "gitlab-deploy-token to get CI_DEPLOY_USER/CI_DEPLOY_PASSWORD in jobs)",
            ),
        ]

    def refusal_hint(self, action: str, status: int) -> str | None:
        if action.startswith("push") or status == 403:
            return (
                "GitLab needs write_registry to push (read_registry to pull): a deploy token, project/group "
                "access token or personal access token with that scope and at least the Developer role. "
                "CI_JOB_TOKEN pushes only to its own project's registry; pulling from another project needs "
                "that project's CI/CD job token allowlist to include this one."
            )
        return (
            "GitLab accepts a deploy token (its own username), a personal or project access token (your GitLab "
            "username) with read_registry/write_registry, or CI_JOB_TOKEN as user gitlab-ci-token inside CI; "
            "check which one `flyte-private-registry explain` shows."
        )
