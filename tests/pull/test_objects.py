"""Cluster objects rendered as YAML: the Secret per Flyte namespace, the ServiceAccount patch, the PodTemplate.

Every manifest is validated against the official Kubernetes schemas with ``kubernetes-validate``
(strict: unknown fields fail), for an older and a recent Kubernetes version.
"""

import base64
import json
import os
import stat

import kubernetes_validate
import pytest
import yaml
from helpers import prepend_path, write_docker_config, write_fake_helper

from flyte_private_registry import (
    DEFAULT_DOMAINS,
    ConfigurationError,
    PrivateRegistry,
    cluster_objects,
    flyte_namespaces,
)
from flyte_private_registry.pull._objects import source_kind

K8S_VERSIONS = ("1.28.0", "1.33.0")
HARBOR = "harbor.example.com/ml"


def dockerconfig(secret: dict) -> dict:
    return json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))


@pytest.fixture
def harbor(monkeypatch, canary_password):
    monkeypatch.setenv("HARBOR_TOKEN", canary_password)
    return PrivateRegistry(HARBOR, username="alice", password_env="HARBOR_TOKEN", pull_secret="harbor-pull")


def test_one_secret_per_flyte_namespace(harbor):
    objects = harbor.cluster_objects(projects=["flytesnacks", "ml"])
    secrets = objects.manifests
    assert DEFAULT_DOMAINS == ("development", "staging", "production")
    assert [s["metadata"]["namespace"] for s in secrets] == flyte_namespaces(["flytesnacks", "ml"])
    assert flyte_namespaces(["ml"], ["dev"], template="flyte-{project}-{domain}") == ["flyte-ml-dev"]
    for secret in secrets:
        assert secret["kind"] == "Secret" and secret["type"] == "kubernetes.io/dockerconfigjson"
        assert secret["metadata"]["name"] == "harbor-pull"
        assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "flyte-private-registry"}
        entry = dockerconfig(secret)["auths"]["harbor.example.com"]
        assert base64.b64decode(entry["auth"]).decode() == f"alice:{entry['password']}"
    assert objects.propeller_config is None


def test_secret_holds_only_its_hosts_with_docker_hub_key(monkeypatch):
    monkeypatch.setenv("HUB_TOKEN", "hub-pw")
    hub = PrivateRegistry("docker.io/acme", username="acme", password_env="HUB_TOKEN", pull_secret="shared")
    quay = PrivateRegistry("quay.io:8443/acme", username="robot", password="quay-pw", pull_secret="shared")
    harbor = PrivateRegistry(HARBOR, username="alice", password="harbor-pw")
    secrets = {
        (s["metadata"]["name"]): dockerconfig(s)["auths"]
        for s in cluster_objects([hub, quay, harbor], namespaces=["team"]).manifests
    }
    assert secrets["shared"].keys() == {"https://index.docker.io/v1/", "quay.io:8443"}
    assert secrets[harbor.pull_secret_name].keys() == {"harbor.example.com"}
    assert secrets["shared"]["https://index.docker.io/v1/"]["username"] == "acme"


def test_two_credentials_for_one_host_in_one_secret_is_refused():
    a = PrivateRegistry("harbor.example.com/a", username="a", password="1", pull_secret="one")
    b = PrivateRegistry("harbor.example.com/b", username="b", password="2", pull_secret="one")
    with pytest.raises(ConfigurationError, match=r"two different credentials for host harbor\.example\.com"):
        cluster_objects([a, b], namespaces=["team"])
    same = PrivateRegistry("harbor.example.com/c", username="a", password="1", pull_secret="one")
    (secret,) = cluster_objects([a, same], namespaces=["team"]).manifests
    assert (
        secret["metadata"]["annotations"]["flyte-private-registry/registries"]
        == "harbor.example.com/a,harbor.example.com/c"
    )


def test_read_only_credential_is_preferred(monkeypatch, canary_password):
    monkeypatch.setenv("HARBOR_TOKEN", canary_password)
    monkeypatch.setenv("HARBOR_PULL_TOKEN", "read-only-token")
    reg = PrivateRegistry(
        HARBOR,
        username="alice",
        password_env="HARBOR_TOKEN",
        pull_username="robot$reader",
        pull_password_env="HARBOR_PULL_TOKEN",
    )
    objects = reg.cluster_objects(namespaces=["team"])
    (secret,) = objects.manifests
    assert dockerconfig(secret)["auths"]["harbor.example.com"]["username"] == "robot$reader"
    assert "env HARBOR_PULL_TOKEN" in secret["metadata"]["annotations"]["flyte-private-registry/credential-sources"]
    text = objects.yaml()
    assert canary_password not in text
    assert base64.b64encode(canary_password.encode()).decode() not in text


def test_credential_sources_annotation_names_kinds_not_local_paths(
    monkeypatch, user_docker_config, tmp_path, canary_password
):
    """Anyone who may read the Secret sees its annotations: no path or user of the rendering machine."""
    write_docker_config(
        user_docker_config,
        {
            "auths": {"harbor.example.com": {"auth": base64.b64encode(b"alice:pw").decode()}},
            "credHelpers": {"quay.io": "fpr-test"},
        },
    )
    write_fake_helper(tmp_path / "bin", "fpr-test", {"quay.io": ("alice-laptop", canary_password)})
    prepend_path(monkeypatch, tmp_path / "bin")
    monkeypatch.setenv("HUB_TOKEN", "hub-pw")
    registries = [
        PrivateRegistry(HARBOR, pull_secret="from-config"),
        PrivateRegistry("quay.io/acme", pull_secret="from-helper"),
        PrivateRegistry("docker.io/acme", username="acme", password_env="HUB_TOKEN", pull_secret="from-env"),
        PrivateRegistry("ghcr.io/acme", pull_username="bot", pull_password="pat", pull_secret="explicit"),
    ]
    objects = cluster_objects(registries, namespaces=["team"])
    sources = {
        s["metadata"]["name"]: s["metadata"]["annotations"]["flyte-private-registry/credential-sources"]
        for s in objects.manifests
    }
    assert sources == {
        "from-config": "docker config",
        "from-helper": "credential helper docker-credential-fpr-test",
        "from-env": "env HUB_TOKEN",
        "explicit": "explicit",
    }
    annotations = json.dumps([s["metadata"]["annotations"] for s in objects.manifests])
    for local in (str(tmp_path), str(user_docker_config), "config.json", "alice", "credHelpers", "auths["):
        assert local not in annotations
    assert str(tmp_path) not in objects.yaml()


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("docker config /home/alice/.docker/config.json auths['harbor.example.com']", "docker config"),
        ("credential store docker-credential-desktop (credsStore)", "credential store docker-credential-desktop"),
        ("env HARBOR_USER/HARBOR_TOKEN", "env HARBOR_USER/HARBOR_TOKEN"),
        ("env GHCR_TOKEN (GHCR_USERNAME/GITHUB_ACTOR)", "env GHCR_TOKEN"),
        ("explicit username/password", "explicit"),
        (
            "AWS ECR GetAuthorizationToken (boto3 default credential chain, profile alice-admin): env credentials",
            "AWS ECR GetAuthorizationToken",
        ),
        ("az acr login --expose-token (user 00000000-0000-0000-0000-000000000000)", "az acr login --expose-token"),
        ("vault /home/alice/vault.json ~alice alice@example.com", "vault"),
    ],
)
def test_source_kind(source, kind):
    assert source_kind(source) == kind


def test_refresh_tokens_cannot_become_a_pull_secret(user_docker_config):
    (user_docker_config / "config.json").write_text(
        json.dumps({"auths": {"harbor.example.com": {"identitytoken": "rt"}}})
    )
    reg = PrivateRegistry(HARBOR)
    with pytest.raises(ConfigurationError, match="refresh token, which kubelet cannot use"):
        reg.cluster_objects(namespaces=["team"])


def test_service_account_and_pod_template(harbor):
    objects = harbor.cluster_objects(
        projects=["flytesnacks"], domains=["development"], service_account="default", pod_template="flyte-pull"
    )
    _, account, template = objects.manifests
    assert account == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": "flytesnacks-development"},
        "imagePullSecrets": [{"name": "harbor-pull"}],
    }
    assert template["metadata"]["namespace"] == "flyte"
    assert template["template"]["spec"]["imagePullSecrets"] == [{"name": "harbor-pull"}]
    assert template["template"]["spec"]["containers"][0]["name"] == "default"
    config = yaml.safe_load(objects.propeller_config)
    assert config["configmap"]["k8s"]["plugins"]["k8s"]["default-pod-template-name"] == "flyte-pull"
    assert "default-pod-template-name: flyte-pull" in objects.propeller_config.split("flyte-binary")[1]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(harbor, version):
    objects = harbor.cluster_objects(
        projects=["flytesnacks", "ml"], service_account=["default", "flyte-runner"], pod_template="flyte-pull"
    )
    documents = list(yaml.safe_load_all(objects.yaml()))
    assert len(documents) == 6 + 12 + 1
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_invalid_manifest_is_caught_by_the_validator():
    """The validation above has teeth: a misspelt field fails."""
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "typ": "Opaque"}, "1.33.0", strict=True
        )


def test_yaml_is_written_0600_only_where_asked(harbor, tmp_path, capsys, canary_password):
    objects = harbor.cluster_objects(namespaces=["team"])
    assert os.listdir(tmp_path) == []
    path = objects.write(tmp_path / "pull.yaml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("# Holds registry credentials")
    existing = tmp_path / "old.yaml"
    existing.write_text("old")
    existing.chmod(0o644)
    objects.write(existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600 and "harbor-pull" in existing.read_text()
    (tmp_path / "link.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    with pytest.raises(OSError):
        objects.write(tmp_path / "link.yaml")
    assert not (tmp_path / "elsewhere.yaml").exists()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert sorted(os.listdir(tmp_path)) == ["link.yaml", "old.yaml", "pull.yaml"]


def test_repr_shows_no_data(harbor, canary_password):
    objects = harbor.cluster_objects(projects=["flytesnacks"], service_account="default")
    assert repr(objects) == "ClusterObjects(3 Secret, 3 ServiceAccount)"
    encoded = base64.b64encode(canary_password.encode()).decode()
    for text in (repr(objects), str(objects), repr(objects.documents[0])):
        assert canary_password not in text and encoded not in text and "dockerconfigjson" not in text
    assert repr(objects.documents[0]) == "Document(Secret flytesnacks-development/harbor-pull)"
    assert objects.holds_credentials


def test_namespaces_are_checked():
    reg = PrivateRegistry(HARBOR, username="a", password="b")
    with pytest.raises(ConfigurationError, match="no namespaces"):
        reg.cluster_objects()
    with pytest.raises(ConfigurationError, match="namespaces='Team_Dev' is not valid: a Kubernetes namespace name"):
        reg.cluster_objects(namespaces=["Team_Dev"])
