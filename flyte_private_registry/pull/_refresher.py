"""Pull secrets for registries whose tokens die within hours (ECR: 12 h), re-minted in the cluster.

A static Secret from such a token works until it expires and then every pull fails, so the
library never renders one silently (see :func:`short_lived_reason`). Instead it renders one of:

* :class:`CronJobRefresher`: a CronJob (with its ServiceAccount and per-namespace RBAC) that runs
  ``aws ecr get-login-password``, writes the Secret for every namespace into the pod's memory and
  ``kubectl apply``-s them, every 4 hours by default (a third of the token's lifetime, so one
  failed run is harmless); the token is never a process argument;
* :class:`ExternalSecretsRefresher`: an External Secrets ``ECRAuthorizationToken`` generator and
  an ``ExternalSecret`` per namespace that templates it into a ``kubernetes.io/dockerconfigjson``
  Secret (needs the External Secrets Operator).

Both authenticate to AWS with the pod's identity (IRSA / EKS Pod Identity), so no long-lived AWS
key is stored in the cluster. On EKS the nodes' own role usually makes all of this unnecessary.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import ConfigurationError
from .._reference import docker_config_key

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry
    from ..credentials import Credential

MANAGED_BY = {"app.kubernetes.io/managed-by": "flyte-private-registry"}
#: Env vars holding a token that dies with its CI job: GitLab's job token (also as CI_REGISTRY_PASSWORD),
#: GitHub Actions' GITHUB_TOKEN. Matched as whole names: GITHUB_TOKEN_READONLY or MY_GITHUB_TOKEN are
#: other variables (``\b`` counts ``_`` as part of a name).
_CI_TOKEN_VARIABLES = re.compile(r"\b(?:CI_JOB_TOKEN|CI_REGISTRY_PASSWORD|GITHUB_TOKEN)\b")


def is_ci_job_token_source(source: str) -> bool:
    """Does a credential source (a keychain's name) name a CI job token variable, as a whole name?"""
    return _CI_TOKEN_VARIABLES.search(source) is not None


def short_lived_reason(registry: PrivateRegistry, credential: Credential | None = None) -> str | None:
    """Why a static Secret for ``registry`` would stop working, or ``None`` if it would not.

    An explicit read-only credential (``pull_username`` + ``pull_password[_env]``: a GAR JSON key,
    an ACR token) is judged by itself, not by the provider's usual tokens, and is never taken for a
    CI job token: the user named it for the cluster.
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
        if not explicit and is_ci_job_token_source(credential.source):
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
    from ..providers._ecr import parse_ecr_host

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


#: Where the render step leaves the Secret manifests for ``kubectl apply``: a memory-backed emptyDir.
WORK_DIR = "/work"
#: Runs in the aws-cli image (Amazon Linux: a shell and coreutils). The token only ever flows through
#: pipes and files in the pod's memory, never through a command line (visible in the process list)
#: nor an environment variable: ``printf`` is a shell builtin and prints only the non-secret parts.
#: ECR tokens are base64 (checked below), so they need no escaping inside the JSON string.
_RENDER_SCRIPT = textwrap.dedent(
    """\
    set -eu
    umask 022  # readable by the kubectl container, whatever user its image runs as
    cd "$WORK_DIR"
    aws ecr get-login-password --region "$AWS_REGION" > .login
    tr -d '\\r\\n' < .login > .token
    if [ ! -s .token ] || [ -n "$(tr -d 'A-Za-z0-9+/=' < .token)" ]; then
      echo "aws ecr get-login-password did not print a base64 token" >&2
      exit 1
    fi
    { printf 'AWS:'; cat .token; } | base64 | tr -d '\\n' > .auth
    {
      printf '{"auths":{"%s":{"username":"AWS","password":"' "$REGISTRY_HOST"
      cat .token
      printf '","auth":"'
      cat .auth
      printf '"}}}'
    } | base64 | tr -d '\\n' > .config
    for ns in $NAMESPACES; do
      {
        printf '{"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/dockerconfigjson",'
        printf '"metadata":{"name":"%s","namespace":"%s",' "$SECRET_NAME" "$ns"
        printf '"labels":{"app.kubernetes.io/managed-by":"flyte-private-registry"}},'
        printf '"data":{".dockerconfigjson":"'
        cat .config
        printf '"}}\\n'
      } > "secret-$ns.json"
      echo "rendered secret $SECRET_NAME for namespace $ns"
    done
    rm -f .login .token .auth .config
    """
)
#: Runs in the kubectl image: no shell needed, so a distroless kubectl works. Server-side apply keeps
#: no ``last-applied-configuration`` annotation (which would hold a second copy of the data).
_APPLY_COMMAND = (
    "kubectl",
    "apply",
    "--server-side",
    "--force-conflicts",
    "--field-manager=flyte-private-registry",
    f"--filename={WORK_DIR}/",
)


@dataclass(frozen=True)
class CronJobRefresher:
    """A CronJob that re-mints the ECR pull Secret in every namespace (default: every 4 h; tokens last 12 h).

    Its pod has two steps sharing an in-memory ``emptyDir``: an init container (``aws_cli_image``,
    which needs a shell, ``base64`` and ``tr``) fetches the token and writes one complete
    ``kubernetes.io/dockerconfigjson`` Secret manifest per namespace; then ``kubectl_image`` runs
    ``kubectl apply --server-side`` on them (no shell needed: a distroless kubectl image works).
    The token is never a command-line argument or an environment variable.

    ``role_arn`` annotates its ServiceAccount for IRSA; the role needs ``ecr:GetAuthorizationToken``.
    Pin ``aws_cli_image``/``kubectl_image`` to images your cluster can pull without this Secret (a
    public registry or a mirror you trust, and a kubectl close to the cluster's version): the
    refresher cannot use the Secret it creates. Run it once right away with
    ``kubectl create job --from=cronjob/<name> <name>-first -n <namespace>``.
    """

    namespace: str = "flyte"
    schedule: str = "0 */4 * * *"
    service_account: str = "flyte-private-registry-refresher"
    role_arn: str | None = None
    aws_cli_image: str = "public.ecr.aws/aws-cli/aws-cli:2.17.0"
    kubectl_image: str = "registry.k8s.io/kubectl:v1.31.0"

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
        work_mount = [{"name": "work", "mountPath": WORK_DIR}]
        pod_spec = {
            "serviceAccountName": self.service_account,
            "restartPolicy": "Never",
            # the pod's own memory: the manifests never reach the node's disk and vanish with the pod
            "volumes": [{"name": "work", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
            "initContainers": [
                {
                    "name": "render",
                    "image": self.aws_cli_image,
                    "command": ["/bin/sh", "-c", _RENDER_SCRIPT],
                    "env": [
                        {"name": "WORK_DIR", "value": WORK_DIR},
                        {"name": "AWS_REGION", "value": target.region},
                        {"name": "SECRET_NAME", "value": secret_name},
                        {"name": "REGISTRY_HOST", "value": docker_config_key(target.host)},
                        {"name": "NAMESPACES", "value": " ".join(namespaces)},
                    ],
                    "volumeMounts": work_mount,
                }
            ],
            "containers": [
                {
                    "name": "apply",
                    "image": self.kubectl_image,
                    "command": list(_APPLY_COMMAND),
                    "volumeMounts": [{**work_mount[0], "readOnly": True}],
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
