"""Short-lived tokens (ECR, CI job tokens) never become a static Secret silently; refreshers instead.

The ECR provider is written elsewhere; the pull side relies only on ``provider.kind``,
``provider.short_lived`` and the ``account_id``/``region`` fields, which this stand-in has.
"""

import os
import subprocess
from datetime import datetime, timedelta, timezone
from typing import ClassVar

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from flyte_private_registry import (
    ConfigurationError,
    CronJobRefresher,
    ExternalSecretsRefresher,
    PrivateRegistry,
    cluster_objects,
)
from flyte_private_registry.credentials import Credential
from flyte_private_registry.providers import Provider

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
NAMESPACES = ["flytesnacks-development", "flytesnacks-production"]


class EcrLike(Provider):
    kind: ClassVar[str] = "ecr"
    short_lived: ClassVar[bool] = True
    account_id: str
    region: str


class Expiring:
    """A keychain answering with a credential that expires in an hour (like an ECR token)."""

    name = "expiring test token"

    def resolve(self, resource):
        return Credential(
            "AWS", SecretStr("ecr-token"), self.name, expires_at=datetime.now(timezone.utc) + timedelta(hours=1)
        )


@pytest.fixture
def ecr():
    return PrivateRegistry(
        f"{ECR_HOST}/team",
        provider=EcrLike(account_id="123456789012", region="eu-west-1"),
        pull_secret="ecr-pull",
        keychains=(Expiring(),),
    )


def test_static_secret_is_refused_before_any_credential_lookup(monkeypatch):
    monkeypatch.delenv("NOT_SET", raising=False)
    reg = PrivateRegistry(
        f"{ECR_HOST}/team", provider=EcrLike(account_id="123456789012", region="eu-west-1"), password_env="NOT_SET",
        username="AWS",
    )  # fmt: skip
    with pytest.raises(ConfigurationError) as info:
        reg.cluster_objects(namespaces=NAMESPACES)
    message = str(info.value)
    assert "ecr registry tokens expire within hours" in message
    assert "CronJobRefresher()" in message and "ExternalSecretsRefresher()" in message
    assert "EKS node IAM role" in message and "allow_short_lived=True" in message


def test_explicit_flag_emits_it_with_its_expiry(ecr):
    objects = ecr.cluster_objects(namespaces=NAMESPACES, allow_short_lived=True)
    secret = objects.manifests[0]
    assert "flyte-private-registry/expires-at" in secret["metadata"]["annotations"]
    assert "expires at" in objects.yaml()


def test_expiring_or_ci_credentials_on_a_long_lived_provider(monkeypatch):
    with pytest.raises(ConfigurationError, match="expires at"):
        PrivateRegistry("harbor.example.com/ml", keychains=(Expiring(),)).cluster_objects(namespaces=["team"])
    monkeypatch.setenv("CI_JOB_TOKEN", "job-token")
    gitlab = PrivateRegistry("registry.gitlab.com/acme", username="gitlab-ci-token", password_env="CI_JOB_TOKEN")
    with pytest.raises(ConfigurationError) as info:
        gitlab.cluster_objects(namespaces=["team"])
    assert "CI job token that dies with the job" in str(info.value)
    assert "pull_username= and pull_password_env=" in str(info.value)


@pytest.mark.parametrize("version", ["1.28.0", "1.33.0"])
def test_cronjob_refresher_validates(ecr, version):
    refresher = CronJobRefresher(role_arn="arn:aws:iam::123456789012:role/ecr-pull-refresher")
    objects = ecr.cluster_objects(namespaces=NAMESPACES, service_account="default", refresher=refresher)
    assert not objects.holds_credentials
    documents = list(yaml.safe_load_all(objects.yaml()))
    kinds = [d["kind"] for d in documents]
    assert kinds == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Role",
        "RoleBinding",
        "CronJob",
        "ServiceAccount",
        "ServiceAccount",
    ]
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)
    account = documents[0]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": refresher.role_arn}
    role = documents[1]
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["ecr-pull"],
        "verbs": ["get", "patch", "update"],
    } in role["rules"]
    assert "kubectl create job --from=cronjob/ecr-pull-refresh" in objects.yaml()


def test_cronjob_runs_well_inside_the_token_lifetime(ecr):
    (cronjob,) = [
        d.manifest
        for d in ecr.cluster_objects(namespaces=NAMESPACES, refresher=CronJobRefresher()).documents
        if d.kind == "CronJob"
    ]
    minute, hour, *_ = cronjob["spec"]["schedule"].split()
    assert minute == "0" and hour.startswith("*/") and int(hour[2:]) * 2 < 12  # one missed run still leaves time
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def test_cronjob_scripts_mint_and_apply_for_every_namespace(ecr, tmp_path):
    """Run the two container scripts with stand-in ``aws`` and ``kubectl`` executables (argv recorded)."""
    (cronjob,) = [
        d.manifest for d in ecr.cluster_objects(namespaces=NAMESPACES, refresher=CronJobRefresher()).documents
        if d.kind == "CronJob"
    ]  # fmt: skip
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    bin_dir, token_dir, log = tmp_path / "bin", tmp_path / "token", tmp_path / "calls.log"
    bin_dir.mkdir()
    token_dir.mkdir()
    shims = {
        "aws": "printf minted-token",
        "kubectl": f'case "$1" in create) echo "kind: Secret" ;; label) cat ;; apply) cat >> {log} ;; esac',
    }
    for tool, body in shims.items():
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n{body}\n')
        (bin_dir / tool).chmod(0o755)

    def run(container):
        env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", **{e["name"]: e["value"] for e in container["env"]}}
        script = container["command"][2].replace("/token/", f"{token_dir}/")
        return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True)

    run(pod["initContainers"][0])
    assert (token_dir / "password").read_text() == "minted-token"
    output = run(pod["containers"][0]).stdout
    assert output.splitlines() == [f"refreshed secret ecr-pull in namespace {ns}" for ns in NAMESPACES]
    calls = log.read_text().splitlines()
    assert calls[0] == "aws ecr get-login-password --region eu-west-1"
    creates = [c for c in calls if c.startswith("kubectl create secret docker-registry")]
    assert creates == [
        f"kubectl create secret docker-registry ecr-pull --namespace {ns} --docker-server={ECR_HOST} "
        "--docker-username=AWS --docker-password=minted-token --dry-run=client --output=yaml"
        for ns in NAMESPACES
    ]
    assert sum("apply --server-side --force-conflicts --field-manager=flyte-private-registry" in c for c in calls) == 2


def test_external_secrets_refresher(ecr):
    refresher = ExternalSecretsRefresher(service_account="ecr-token-minter", role="arn:aws:iam::123456789012:role/pull")
    objects = ecr.cluster_objects(namespaces=NAMESPACES, refresher=refresher)
    documents = [d.manifest for d in objects.documents]
    generators = [d for d in documents if d["kind"] == "ECRAuthorizationToken"]
    externals = [d for d in documents if d["kind"] == "ExternalSecret"]
    assert [g["metadata"]["namespace"] for g in generators] == NAMESPACES
    # CRDs: kubernetes-validate has no schema for them; these are the fields of ESO's CRDs
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(generators[0], "1.33.0", strict=True)
    assert generators[0]["apiVersion"] == "generators.external-secrets.io/v1alpha1"
    assert generators[0]["spec"] == {
        "region": "eu-west-1",
        "role": "arn:aws:iam::123456789012:role/pull",
        "auth": {"jwt": {"serviceAccountRef": {"name": "ecr-token-minter"}}},
    }
    external = externals[0]
    assert external["apiVersion"] == "external-secrets.io/v1"
    spec = external["spec"]
    assert (
        spec["target"]["name"] == "ecr-pull" and spec["target"]["template"]["type"] == "kubernetes.io/dockerconfigjson"
    )
    assert spec["dataFrom"] == [
        {"sourceRef": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1",
                                        "kind": "ECRAuthorizationToken", "name": "ecr-pull-ecr-token"}}}
    ]  # fmt: skip
    # The template renders (username/password as the generator outputs them) to a docker config
    template = spec["target"]["template"]["data"][".dockerconfigjson"]
    rendered = (
        template.replace("{{ .username }}", "AWS")
        .replace("{{ .password }}", "pw")
        .replace('{{ printf "%s:%s" .username .password | b64enc }}', "QVdTOnB3")
    )
    assert yaml.safe_load(rendered) == {"auths": {ECR_HOST: {"username": "AWS", "password": "pw", "auth": "QVdTOnB3"}}}


def test_refreshers_are_for_ecr_only():
    class GarLike(Provider):
        kind: ClassVar[str] = "gar"
        short_lived: ClassVar[bool] = True

    gar = PrivateRegistry("europe-docker.pkg.dev/acme/ml", provider=GarLike())
    with pytest.raises(ConfigurationError, match="refreshers mint ECR tokens only"):
        gar.cluster_objects(namespaces=NAMESPACES, refresher=CronJobRefresher())
    public = PrivateRegistry("public.ecr.aws/acme", provider=EcrLike(account_id="123456789012", region="us-east-1"))
    with pytest.raises(ConfigurationError, match="ECR Public"):
        public.cluster_objects(namespaces=NAMESPACES, refresher=ExternalSecretsRefresher())


def test_one_refreshed_secret_per_ecr_registry(ecr):
    other = PrivateRegistry(
        "210987654321.dkr.ecr.us-east-1.amazonaws.com",
        provider=EcrLike(account_id="210987654321", region="us-east-1"),
        pull_secret="ecr-pull",
    )
    with pytest.raises(ConfigurationError, match="shared by several ECR registries"):
        cluster_objects([ecr, other], namespaces=NAMESPACES, refresher=CronJobRefresher())
    harbor = PrivateRegistry("harbor.example.com/ml", username="a", password="b", pull_secret="ecr-pull")
    with pytest.raises(ConfigurationError, match="mixes short-lived and long-lived"):
        cluster_objects([ecr, harbor], namespaces=NAMESPACES, refresher=CronJobRefresher())


def test_an_explicit_long_lived_pull_credential_is_trusted():
    """GAR with a service-account JSON key, ACR with a repository token: no refresher needed."""

    class GarLike(Provider):
        kind: ClassVar[str] = "gar"
        short_lived: ClassVar[bool] = True

    gar = PrivateRegistry(
        "europe-docker.pkg.dev/acme/ml", provider=GarLike(), pull_username="_json_key", pull_password='{"type": "x"}'
    )
    (secret,) = gar.cluster_objects(namespaces=["ml-development"]).manifests
    assert secret["metadata"]["annotations"]["flyte-private-registry/credential-sources"] == "explicit pull credential"
    with pytest.raises(ConfigurationError, match="External Secrets generator"):
        PrivateRegistry("europe-docker.pkg.dev/acme/ml", provider=GarLike()).cluster_objects(namespaces=["ml"])
