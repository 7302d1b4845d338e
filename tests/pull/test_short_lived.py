"""Short-lived tokens (ECR, CI job tokens) never become a static Secret silently; refreshers instead.

The ECR provider is written elsewhere; the pull side relies only on ``provider.kind``,
``provider.short_lived`` and the ``account_id``/``region`` fields, which this stand-in has.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, SecretStr

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


class EcrLike(BaseModel, Provider):  # a provider with options is a pydantic model, as EcrProvider is
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
    role = documents[1]  # what the merge step needs: create, and get/update the one Secret
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]} in role["rules"]
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["ecr-pull"],
        "verbs": ["get", "update"],
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


def _cronjob_pod(registry, **options):
    objects = registry.cluster_objects(namespaces=NAMESPACES, refresher=CronJobRefresher(**options))
    (cronjob,) = [d.manifest for d in objects.documents if d.kind == "CronJob"]
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _recording_bin(tmp_path, token):
    """PATH of wrappers recording every program's argv (``aws`` a stand-in printing ``token``, the rest real)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "argv.log"
    bin_dir.mkdir()
    (tmp_path / "token-source").write_text(token + "\n")
    record = f'for a in "$0" "$@"; do printf "%s\\0" "$a"; done >> {log}; printf "\\n" >> {log}'
    stand_ins = {"aws": f"cat {tmp_path / 'token-source'}"}
    for tool in ("tr", "cat", "rm", "mv", "ls"):
        stand_ins[tool] = f'exec {shutil.which(tool)} "$@"'
    for tool, body in stand_ins.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{record}\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    return bin_dir, log


def _run_token_step(pod, tmp_path, token):
    (step,) = pod["initContainers"]
    bin_dir, log = _recording_bin(tmp_path, token)
    work = tmp_path / "work"
    work.mkdir()
    env = {e["name"]: e["value"] for e in step["env"]}
    assert env.pop("WORK_DIR") == "/work"
    done = subprocess.run(
        step["command"], env={"PATH": str(bin_dir), **env, "WORK_DIR": str(work)}, capture_output=True, text=True
    )
    return done, work, log


def _run_merge_step(pod, work, api, tmp_path, **env_overrides):
    """The merge container's program, run for real by this Python against the stand-in API server.

    What cannot run here: the python image itself and a real API server. The program gets the
    stand-in's URL through API_SERVER and a service-account directory with a dummy token (no
    ca.crt: the stand-in speaks plain HTTP); in a pod it reads KUBERNETES_SERVICE_HOST/PORT and
    the mounted token and CA.
    """
    (merge,) = pod["containers"]
    assert merge["command"][:3] == ["python3", "-I", "-c"]
    account = tmp_path / "serviceaccount"
    account.mkdir(exist_ok=True)
    (account / "token").write_text("stand-in-bearer-token")
    env = {e["name"]: e["value"] for e in merge["env"]}
    assert env.pop("WORK_DIR") == "/work"
    env.update(WORK_DIR=str(work), API_SERVER=api.url, SERVICE_ACCOUNT_DIR=str(account), PATH="/usr/bin:/bin")
    env.update(env_overrides)
    return subprocess.run([sys.executable, *merge["command"][1:]], env=env, capture_output=True, text=True)


# a token as ECR's are: long base64 (with + / =) that the CLI prints with a newline
def _ecr_token() -> str:
    return base64.b64encode(os.urandom(1500) + b"\xfb\xff").decode()


def test_cronjob_token_step_keeps_the_token_off_every_command_line(ecr, tmp_path):
    """Run the first container's script with every program it may call wrapped to record its argv.

    PATH holds only the wrappers (an ``aws`` stand-in, the real ``tr``/``cat``/... behind
    recorders), so any program the script runs is recorded; none may see the token. The real
    aws-cli image cannot run here (no network, no AWS).
    """
    pod = _cronjob_pod(ecr)
    (volume,) = pod["volumes"]
    assert volume["emptyDir"]["medium"] == "Memory"
    (step,), (merge,) = pod["initContainers"], pod["containers"]
    assert step["image"].startswith("public.ecr.aws/aws-cli/aws-cli:")
    assert merge["image"] == "public.ecr.aws/docker/library/python:3.12-alpine"
    for container in (step, merge):
        assert [m["name"] for m in container["volumeMounts"]] == [volume["name"]]
    token = _ecr_token()
    done, work, log = _run_token_step(pod, tmp_path, token)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"fetched an ECR token for {ECR_HOST}"]
    assert token not in done.stdout + done.stderr
    assert sorted(os.listdir(work)) == ["token"]  # temporary files removed
    assert (work / "token").read_text() == token
    calls = [line.rstrip("\0").split("\0") for line in log.read_text().splitlines()]
    programs = [Path(call[0]).name for call in calls]
    assert programs.count("aws") == 1
    assert calls[programs.index("aws")][1:] == ["ecr", "get-login-password", "--region", "eu-west-1"]
    for call in calls:
        for argument in call:
            assert token not in argument and token[:40] not in argument
    assert token not in step["command"][2] and token not in merge["command"][3]


def test_cronjob_token_step_refuses_what_is_not_a_token(ecr, tmp_path):
    done, work, _ = _run_token_step(_cronjob_pod(ecr), tmp_path, "<html>error page</html>")
    assert done.returncode == 1 and "did not print a base64 token" in done.stderr
    assert os.listdir(work) == []


def test_cronjob_merge_step_creates_updates_and_never_clobbers(ecr, tmp_path):
    """The refresher's merge, run for real: created, unchanged, a foreign Secret refused byte-identical."""
    from kube_stand_in import stand_in_api

    pod = _cronjob_pod(ecr)
    token = _ecr_token()
    auth = base64.b64encode(f"AWS:{token}".encode()).decode()
    foreign_ns = "flytesnacks-staging"
    foreign = {
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "ecr-pull", "labels": {"team": "platform"}},
        "data": {".dockerconfigjson": base64.b64encode(b'{"auths": {"quay.io": {"auth": "eDp5"}}}').decode()},
    }
    with stand_in_api({*NAMESPACES, foreign_ns}) as api:
        api.put(foreign_ns, "secrets", foreign)
        before = api.get(foreign_ns, "secrets", "ecr-pull")
        done, work, _ = _run_token_step(pod, tmp_path, token)
        assert done.returncode == 0, done.stderr
        merged = _run_merge_step(pod, work, api, tmp_path, NAMESPACES=" ".join([*NAMESPACES, foreign_ns]))
        assert merged.returncode == 1  # one namespace refused: the Job fails and shows in kubectl get jobs
        assert merged.stdout.splitlines() == [f"secret {ns}/ecr-pull: created" for ns in NAMESPACES]
        assert f"secret {foreign_ns}/ecr-pull: refused: Secret {foreign_ns}/ecr-pull exists and was not created" in (
            merged.stderr
        )
        assert "CronJobRefresher(adopt=True)" in merged.stderr and "Traceback" not in merged.stderr
        assert token not in merged.stdout + merged.stderr and auth not in merged.stdout + merged.stderr
        assert api.get(foreign_ns, "secrets", "ecr-pull") == before
        assert os.listdir(work) == []  # the merge step deletes the token once read
        for ns in NAMESPACES:
            secret = api.get(ns, "secrets", "ecr-pull")
            kubernetes_validate.validate({**secret, "apiVersion": "v1"}, "1.33.0", strict=True)
            assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "flyte-private-registry"}
            config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
            assert config == {"auths": {ECR_HOST: {"username": "AWS", "password": token, "auth": auth}}}
        assert {path.split("?")[0] for method, path, _ in api.writes()} == {
            f"/api/v1/namespaces/{ns}/secrets" for ns in NAMESPACES
        }
        assert all("fieldManager=flyte-private-registry" in path for _, path, _ in api.writes())

        # the same token again: nothing to write
        writes = len(api.writes())
        (work / "token").write_text(token)
        again = _run_merge_step(pod, work, api, tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines() == [f"secret {ns}/ecr-pull: unchanged" for ns in NAMESPACES]
        assert len(api.writes()) == writes


def test_cronjob_merge_step_keeps_other_entries_and_adopts_only_when_rendered_to(ecr, tmp_path):
    from kube_stand_in import stand_in_api

    ours_ns, theirs_ns = NAMESPACES
    other = {"username": "ci", "password": "quay-pw", "auth": base64.b64encode(b"ci:quay-pw").decode()}
    old_ecr = {"username": "AWS", "password": "expired", "auth": base64.b64encode(b"AWS:expired").decode()}
    with stand_in_api(set(NAMESPACES)) as api:
        # ours, from an earlier run, to which someone added quay.io by hand
        api.put(ours_ns, "secrets", {
            "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "ecr-pull", "labels": {"app.kubernetes.io/managed-by": "flyte-private-registry"},
                         "annotations": {"flyte-private-registry/hosts": ECR_HOST}},
            "data": {".dockerconfigjson": base64.b64encode(
                json.dumps({"auths": {ECR_HOST: old_ecr, "quay.io": other}}).encode()).decode()},
        })  # fmt: skip
        # someone else's, with an entry for quay.io and a key of its own
        api.put(theirs_ns, "secrets", {
            "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "ecr-pull", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
            "data": {".dockerconfigjson": base64.b64encode(json.dumps({"auths": {"quay.io": other}}).encode()).decode(),
                     "extra": base64.b64encode(b"theirs").decode()},
        })  # fmt: skip
        theirs_before = api.get(theirs_ns, "secrets", "ecr-pull")
        for adopt, expected in ((False, 1), (True, 0)):
            token = _ecr_token()
            pod = _cronjob_pod(ecr, adopt=adopt)
            (merge,) = pod["containers"]
            assert {"name": "ADOPT", "value": "true" if adopt else "false"} in merge["env"]
            work = tmp_path / f"work-{adopt}"
            work.mkdir()
            (work / "token").write_text(token)
            done = _run_merge_step(pod, work, api, tmp_path)
            assert done.returncode == expected, done.stderr
            assert token not in done.stdout + done.stderr
            mine = api.get(ours_ns, "secrets", "ecr-pull")
            auths = json.loads(base64.b64decode(mine["data"][".dockerconfigjson"]))["auths"]
            assert auths["quay.io"] == other and auths[ECR_HOST]["password"] == token
            theirs = api.get(theirs_ns, "secrets", "ecr-pull")
            if not adopt:
                assert theirs == theirs_before
                continue
            auths = json.loads(base64.b64decode(theirs["data"][".dockerconfigjson"]))["auths"]
            assert auths["quay.io"] == other and auths[ECR_HOST]["password"] == token
            assert theirs["data"]["extra"] == theirs_before["data"]["extra"]
            assert theirs["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "Helm"}
            assert theirs["metadata"]["annotations"]["flyte-private-registry/adopted"] == "true"


def test_cronjob_merge_step_reports_an_unreachable_api_server_without_a_traceback(ecr, tmp_path):
    from kube_stand_in import stand_in_api
    from rig import free_port

    pod = _cronjob_pod(ecr)
    work = tmp_path / "work"
    work.mkdir()
    token = _ecr_token()
    (work / "token").write_text(token)
    with stand_in_api(set()) as api:
        api.url = f"http://127.0.0.1:{free_port()}"
        done = _run_merge_step(pod, work, api, tmp_path)
    assert done.returncode == 1 and "the API server did not answer" in done.stderr
    assert "Traceback" not in done.stderr and token not in done.stdout + done.stderr


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
