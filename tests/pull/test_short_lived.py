"""Short-lived tokens (ECR, CI job tokens) never become a static Secret silently; refreshers instead.

The ECR provider is written elsewhere; the pull side relies only on ``provider.kind``,
``provider.short_lived`` and the ``account_id``/``region`` fields, which this stand-in has.
"""

import base64
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
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
from flyte_private_registry.pull._refresher import short_lived_reason

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


def test_a_read_only_token_named_like_a_job_token_is_not_one(monkeypatch):
    """Job tokens are recognised by whole variable names: GITHUB_TOKEN_READONLY is somebody's PAT."""
    monkeypatch.setenv("GITHUB_TOKEN_READONLY", "read-only-pat")
    reg = PrivateRegistry(
        "ghcr.io/acme", pull_username="acme-bot", pull_password_env="GITHUB_TOKEN_READONLY", pull_secret="ghcr-pull"
    )
    (secret,) = reg.cluster_objects(namespaces=["team"]).manifests
    auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
    assert auths["ghcr.io"]["username"] == "acme-bot" and auths["ghcr.io"]["password"] == "read-only-pat"
    # the same variable as the push credential is no job token either
    monkeypatch.setenv("MY_GITHUB_TOKEN", "pat")
    for variable in ("GITHUB_TOKEN_READONLY", "MY_GITHUB_TOKEN"):
        push = PrivateRegistry("harbor.example.com/ml", username="alice", password_env=variable)
        assert len(push.cluster_objects(namespaces=["team"]).manifests) == 1


@pytest.mark.parametrize(
    ("source", "job_token"),
    [
        ("env GITHUB_TOKEN", True),
        ("env GITHUB_ACTOR/GITHUB_TOKEN", True),
        ("env CI_REGISTRY_USER/CI_REGISTRY_PASSWORD", True),
        ("GitLab CI env CI_JOB_TOKEN (user gitlab-ci-token)", True),
        ("env GITHUB_TOKEN_READONLY", False),
        ("env MY_GITHUB_TOKEN", False),
        ("env CI_JOB_TOKEN2", False),
        ("env XCI_JOB_TOKEN", False),
    ],
)
def test_job_tokens_are_whole_variable_names(source, job_token):
    reg = PrivateRegistry("harbor.example.com/ml")
    credential = Credential("user", SecretStr("x"), source)
    assert (short_lived_reason(reg, credential) is not None) == job_token


def test_an_explicit_pull_credential_is_never_taken_for_a_job_token(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "a-pat-someone-exported-under-that-name")
    reg = PrivateRegistry("ghcr.io/acme", pull_username="acme-bot", pull_password_env="GITHUB_TOKEN")
    assert short_lived_reason(reg, reg.resolve_pull().require()) is None
    assert len(reg.cluster_objects(namespaces=["team"]).manifests) == 1


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
    role = documents[1]  # what `kubectl apply --server-side` needs: create, and get/patch/update the one Secret
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]} in role["rules"]
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


def test_cronjob_renders_and_applies_without_the_token_in_any_command_line(ecr, tmp_path):
    """Run both containers with every program they may call wrapped to record its argv.

    PATH holds only the wrappers (``aws`` and ``kubectl`` stand-ins, the real ``base64``/``tr``/...
    behind recorders), so any program the script runs is recorded; none may see the token.
    """
    (cronjob,) = [
        d.manifest for d in ecr.cluster_objects(namespaces=NAMESPACES, refresher=CronJobRefresher()).documents
        if d.kind == "CronJob"
    ]  # fmt: skip
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    assert volume["emptyDir"]["medium"] == "Memory"
    (render,), (apply,) = pod["initContainers"], pod["containers"]
    assert render["image"].startswith("public.ecr.aws/aws-cli/aws-cli:")
    assert apply["image"] == "registry.k8s.io/kubectl:v1.31.0"
    assert apply["command"][0] == "kubectl" and "env" not in apply  # no shell: a distroless image works
    for container in (render, apply):
        assert [m["name"] for m in container["volumeMounts"]] == [volume["name"]]

    # a token as ECR's are: long base64 (with + / =) that the CLI prints with a newline
    token = base64.b64encode(os.urandom(1500) + b"\xfb\xff").decode()
    bin_dir, work, log = tmp_path / "bin", tmp_path / "work", tmp_path / "argv.log"
    bin_dir.mkdir()
    work.mkdir()
    (tmp_path / "token").write_text(token + "\n")
    record = f'for a in "$0" "$@"; do printf "%s\\0" "$a"; done >> {log}; printf "\\n" >> {log}'
    stand_ins = {
        "aws": f"cat {tmp_path / 'token'}",
        "kubectl": 'for a in "$@"; do case "$a" in --filename=*) dir="${a#--filename=}" ;; esac; done\n'
        f'ls "$dir" > {tmp_path / "applied"}',
    }
    for tool in ("base64", "tr", "cat", "rm", "ls"):
        stand_ins[tool] = f'exec {shutil.which(tool)} "$@"'
    for tool, body in stand_ins.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{record}\n{body}\n")
        (bin_dir / tool).chmod(0o755)

    def run(command, env):
        command = [part.replace("/work/", f"{work}/") for part in command]
        done = subprocess.run(command, env={"PATH": str(bin_dir), **env}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert token not in done.stdout + done.stderr
        return done

    env = {e["name"]: e["value"] for e in render["env"]}
    assert env.pop("WORK_DIR") == "/work"
    rendered = run(render["command"], {**env, "WORK_DIR": str(work)})
    assert rendered.stdout.splitlines() == [f"rendered secret ecr-pull for namespace {ns}" for ns in NAMESPACES]
    assert sorted(os.listdir(work)) == [f"secret-{ns}.json" for ns in NAMESPACES]  # temporary files removed
    auth = base64.b64encode(f"AWS:{token}".encode()).decode()
    for ns in NAMESPACES:
        secret = json.loads((work / f"secret-{ns}.json").read_text())
        kubernetes_validate.validate(secret, "1.33.0", strict=True)
        assert secret["metadata"] == {
            "name": "ecr-pull",
            "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "flyte-private-registry"},
        }
        assert secret["type"] == "kubernetes.io/dockerconfigjson"
        config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
        assert config == {"auths": {ECR_HOST: {"username": "AWS", "password": token, "auth": auth}}}

    run(apply["command"], {})
    assert (tmp_path / "applied").read_text().split() == [f"secret-{ns}.json" for ns in NAMESPACES]

    calls = [line.rstrip("\0").split("\0") for line in log.read_text().splitlines()]
    programs = [Path(call[0]).name for call in calls]
    assert programs.count("aws") == 1 and programs.count("kubectl") == 1 and "base64" in programs
    assert calls[programs.index("aws")][1:] == ["ecr", "get-login-password", "--region", "eu-west-1"]
    assert calls[programs.index("kubectl")][1:] == [
        "apply", "--server-side", "--force-conflicts", "--field-manager=flyte-private-registry",
        f"--filename={work}/",
    ]  # fmt: skip
    for call in calls:
        for argument in call:
            assert token not in argument and auth not in argument and token[:40] not in argument
    assert token not in render["command"][2]


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
    assert secret["metadata"]["annotations"]["flyte-private-registry/credential-sources"] == "explicit"
    with pytest.raises(ConfigurationError, match="External Secrets generator"):
        PrivateRegistry("europe-docker.pkg.dev/acme/ml", provider=GarLike()).cluster_objects(namespaces=["ml"])
