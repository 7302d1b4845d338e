"""Pull secrets for registries whose tokens die within hours (ECR: 12 h), re-minted in the cluster.

A static Secret from such a token works until it expires and then every pull fails, so the
library never renders one silently (see :func:`short_lived_reason`). Instead it renders one of:

* :class:`CronJobRefresher`: a CronJob (with its ServiceAccount and per-namespace RBAC) that runs
  ``aws ecr get-login-password`` and re-applies the Secret in every namespace, every 4 hours by
  default (a third of the token's lifetime, so one failed run is harmless);
* :class:`ExternalSecretsRefresher`: an External Secrets ``ECRAuthorizationToken`` generator and
  an ``ExternalSecret`` per namespace that templates it into a ``kubernetes.io/dockerconfigjson``
  Secret (needs the External Secrets Operator).

Both authenticate to AWS with the pod's identity (IRSA / EKS Pod Identity), so no long-lived AWS
key is stored in the cluster. On EKS the nodes' own role usually makes all of this unnecessary.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import ConfigurationError
from ._reference import docker_config_key

if TYPE_CHECKING:
    from ._registry import PrivateRegistry
    from .credentials import Credential

MANAGED_BY = {"app.kubernetes.io/managed-by": "flyte-private-registry"}
#: Credential sources that die with a CI job (GitLab's job token, GitHub Actions' GITHUB_TOKEN).
_CI_TOKEN_SOURCES = ("CI_JOB_TOKEN", "GITHUB_TOKEN")


def short_lived_reason(registry: PrivateRegistry, credential: Credential | None = None) -> str | None:
    """Why a static Secret for ``registry`` would stop working, or ``None`` if it would not.

    An explicit read-only credential (``pull_username`` + ``pull_password[_env]``: a GAR JSON key,
    an ACR token) is judged by itself, not by the provider's usual tokens.
    """
    provider = registry.provider
    explicit = registry.pull_username is not None and (
        registry.pull_password is not None or registry.pull_password_env is not None
    )
    if getattr(provider, "short_lived", False) and not explicit:
        return f"{provider.kind} registry tokens expire within hours"
    if credential is not None:
        if credential.expires_at is not None:
            return f"the credential from {credential.source} expires at {credential.expires_at.isoformat()}"
        if any(name in credential.source for name in _CI_TOKEN_SOURCES):
            return f"the credential from {credential.source} is a CI job token that dies with the job"
    return None


@dataclass(frozen=True)
class EcrTarget:
    """What a refresher needs to mint an ECR token: the registry host, its account and region."""

    host: str
    account_id: str
    region: str


def ecr_target(registry: PrivateRegistry) -> EcrTarget:
    """Account and region of an ECR registry, read from its host (the ECR provider's own parser)."""
    from .providers._ecr import parse_ecr_host

    try:
        parsed = parse_ecr_host(registry.host)
    except ConfigurationError:
        raise ConfigurationError(
            f"no in-cluster refresher for {registry.provider.kind} registry {registry.registry}: "
            "refreshers mint ECR tokens only. For GAR/ACR let kubelet pull with the node's identity (GKE "
            "node service account with Artifact Registry Reader, AKS attach-acr) or use an External Secrets "
            "generator (GCRAccessToken, ACRAccessToken)."
        ) from None
    if parsed.public:
        raise ConfigurationError(
            f"{registry.registry} is ECR Public: its images can be pulled anonymously, so the cluster needs "
            "no pull secret (an authenticated pull only raises rate limits). Use @task instead of @reg.task."
        )
    assert parsed.account_id is not None  # private ECR hosts always name the account
    return EcrTarget(host=parsed.host, account_id=parsed.account_id, region=parsed.region)


def _metadata(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY), **extra}


class Refresher(Protocol):
    """Something that renders the objects keeping a short-lived pull Secret fresh."""

    def manifests(
        self, secret_name: str, registries: Sequence[PrivateRegistry], namespaces: Sequence[str]
    ) -> list[tuple[dict[str, Any], str | None]]: ...


def _single_target(secret_name: str, registries: Sequence[PrivateRegistry]) -> EcrTarget:
    targets = {ecr_target(r) for r in registries}
    if len(targets) != 1:
        hosts = ", ".join(sorted(t.host for t in targets))
        raise ConfigurationError(
            f"pull secret {secret_name!r} is shared by several ECR registries ({hosts}); a refresher mints one "
            "token per Secret. Give each registry its own pull_secret=."
        )
    return targets.pop()


_APPLY_SCRIPT = textwrap.dedent(
    """\
    set -eu
    password="$(cat /token/password)"
    for ns in $NAMESPACES; do
      kubectl create secret docker-registry "$SECRET_NAME" --namespace "$ns" \\
        --docker-server="$REGISTRY_HOST" --docker-username=AWS --docker-password="$password" \\
        --dry-run=client --output=yaml \\
      | kubectl label --local --filename=- --output=yaml app.kubernetes.io/managed-by=flyte-private-registry \\
      | kubectl apply --server-side --force-conflicts --field-manager=flyte-private-registry --filename=-
      echo "refreshed secret $SECRET_NAME in namespace $ns"
    done
    """
)
_MINT_SCRIPT = 'aws ecr get-login-password --region "$AWS_REGION" > /token/password\n'


@dataclass(frozen=True)
class CronJobRefresher:
    """A CronJob that re-mints the ECR pull Secret in every namespace (default: every 4 h; tokens last 12 h).

    ``role_arn`` annotates its ServiceAccount for IRSA; the role needs ``ecr:GetAuthorizationToken``.
    Pin ``aws_cli_image``/``kubectl_image`` to images your cluster can pull (a public mirror you
    trust): the refresher cannot use the Secret it creates. Run it once right away with
    ``kubectl create job --from=cronjob/<name> <name>-first -n <namespace>``.
    """

    namespace: str = "flyte"
    schedule: str = "0 */4 * * *"
    service_account: str = "flyte-private-registry-refresher"
    role_arn: str | None = None
    aws_cli_image: str = "public.ecr.aws/aws-cli/aws-cli:2.17.0"
    kubectl_image: str = "docker.io/bitnami/kubectl:1.30"

    def manifests(
        self, secret_name: str, registries: Sequence[PrivateRegistry], namespaces: Sequence[str]
    ) -> list[tuple[dict[str, Any], str | None]]:
        target = _single_target(secret_name, registries)
        name = f"{secret_name}-refresh"[:52].rstrip("-.")  # CronJob names must leave room for job suffixes
        annotations = {"eks.amazonaws.com/role-arn": self.role_arn} if self.role_arn else None
        sa_meta = _metadata(self.service_account, self.namespace)
        if annotations:
            sa_meta["annotations"] = annotations
        docs: list[tuple[dict[str, Any], str | None]] = [
            ({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": sa_meta}, "Identity of the refresher"),
        ]
        for namespace in namespaces:
            docs.append(
                (
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "Role",
                        "metadata": _metadata(name, namespace),
                        "rules": [
                            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
                            {
                                "apiGroups": [""],
                                "resources": ["secrets"],
                                "resourceNames": [secret_name],
                                "verbs": ["get", "patch", "update"],
                            },
                        ],
                    },
                    None,
                )
            )
            docs.append(
                (
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "RoleBinding",
                        "metadata": _metadata(name, namespace),
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                        "subjects": [
                            {"kind": "ServiceAccount", "name": self.service_account, "namespace": self.namespace}
                        ],
                    },
                    None,
                )
            )
        token_mount = [{"name": "token", "mountPath": "/token"}]
        pod_spec = {
            "serviceAccountName": self.service_account,
            "restartPolicy": "Never",
            "volumes": [{"name": "token", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
            "initContainers": [
                {
                    "name": "mint",
                    "image": self.aws_cli_image,
                    "command": ["/bin/sh", "-c", _MINT_SCRIPT],
                    "env": [{"name": "AWS_REGION", "value": target.region}],
                    "volumeMounts": token_mount,
                }
            ],
            "containers": [
                {
                    "name": "apply",
                    "image": self.kubectl_image,
                    "command": ["/bin/sh", "-c", _APPLY_SCRIPT],
                    "env": [
                        {"name": "SECRET_NAME", "value": secret_name},
                        {"name": "REGISTRY_HOST", "value": docker_config_key(target.host)},
                        {"name": "NAMESPACES", "value": " ".join(namespaces)},
                    ],
                    "volumeMounts": token_mount,
                }
            ],
        }
        cronjob = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _metadata(name, self.namespace),
            "spec": {
                "schedule": self.schedule,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 600,
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 3,
                        "activeDeadlineSeconds": 600,
                        "template": {"metadata": {"labels": dict(MANAGED_BY)}, "spec": pod_spec},
                    }
                },
            },
        }
        comment = (
            f"Re-mints {secret_name} ({target.host}) in {len(namespaces)} namespace(s) on '{self.schedule}'. "
            f"First run: kubectl create job --from=cronjob/{name} {name}-first -n {self.namespace}"
        )
        docs.append((cronjob, comment))
        return docs


@dataclass(frozen=True)
class ExternalSecretsRefresher:
    """An ``ECRAuthorizationToken`` generator and an ``ExternalSecret`` per namespace (External Secrets Operator).

    Without ``service_account`` the generator uses the operator's own AWS identity; with it, the
    named ServiceAccount in each namespace (IRSA-annotated). ``role`` is assumed before the call.
    """

    refresh_interval: str = "1h"
    role: str | None = None
    service_account: str | None = None
    api_version: str = "external-secrets.io/v1"
    generator_api_version: str = "generators.external-secrets.io/v1alpha1"

    def manifests(
        self, secret_name: str, registries: Sequence[PrivateRegistry], namespaces: Sequence[str]
    ) -> list[tuple[dict[str, Any], str | None]]:
        target = _single_target(secret_name, registries)
        generator_name = f"{secret_name}-ecr-token"
        spec: dict[str, Any] = {"region": target.region}
        if self.role:
            spec["role"] = self.role
        if self.service_account:
            spec["auth"] = {"jwt": {"serviceAccountRef": {"name": self.service_account}}}
        key = docker_config_key(target.host)
        config = (
            '{"auths":{"' + key + '":{"username":"{{ .username }}","password":"{{ .password }}",'
            '"auth":"{{ printf "%s:%s" .username .password | b64enc }}"}}}'
        )
        docs: list[tuple[dict[str, Any], str | None]] = []
        for namespace in namespaces:
            docs.append(
                (
                    {
                        "apiVersion": self.generator_api_version,
                        "kind": "ECRAuthorizationToken",
                        "metadata": _metadata(generator_name, namespace),
                        "spec": spec,
                    },
                    f"Mints 12 h ECR tokens for {target.host} (account {target.account_id})",
                )
            )
            docs.append(
                (
                    {
                        "apiVersion": self.api_version,
                        "kind": "ExternalSecret",
                        "metadata": _metadata(secret_name, namespace),
                        "spec": {
                            "refreshInterval": self.refresh_interval,
                            "target": {
                                "name": secret_name,
                                "creationPolicy": "Owner",
                                "template": {
                                    "type": "kubernetes.io/dockerconfigjson",
                                    "engineVersion": "v2",
                                    "metadata": {"labels": dict(MANAGED_BY)},
                                    "data": {".dockerconfigjson": config},
                                },
                            },
                            "dataFrom": [
                                {
                                    "sourceRef": {
                                        "generatorRef": {
                                            "apiVersion": self.generator_api_version,
                                            "kind": "ECRAuthorizationToken",
                                            "name": generator_name,
                                        }
                                    }
                                }
                            ],
                        },
                    },
                    None,
                )
            )
        return docs
