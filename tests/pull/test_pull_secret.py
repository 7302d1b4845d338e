"""The rendered Secret really works: the Docker engine pulls with a DOCKER_CONFIG made only from it.

kubelet and the docker CLI read the same ``.dockerconfigjson``; docker is the stricter reader (it
only uses ``auth`` and matches keys by host), so a pull through the real engine is the proof.
"""

import base64
import json
import uuid

import pytest
from helpers import docker_push

from flyte_private_registry import PrivateRegistry

pytestmark = pytest.mark.integration


def config_from_secret(secret: dict, directory) -> dict:
    """Write the Secret's .dockerconfigjson, and nothing else, as a docker config directory."""
    assert secret["kind"] == "Secret" and secret["type"] == "kubernetes.io/dockerconfigjson"
    payload = base64.b64decode(secret["data"][".dockerconfigjson"])
    directory.mkdir()
    (directory / "config.json").write_bytes(payload)
    return {"DOCKER_CONFIG": str(directory)}


@pytest.fixture(scope="module")
def basic_image(docker_engine, basic_registry, registry_users, busybox_image, tmp_path_factory):
    image = basic_registry.reference(f"ml/app-{uuid.uuid4().hex[:6]}", "v1")
    docker_push(
        docker_engine, busybox_image, image, "alice", registry_users.alice_password, tmp_path_factory.mktemp("seed")
    )
    return image


@pytest.fixture(scope="module")
def token_image(docker_engine, token_registry, registry_users, busybox_image, tmp_path_factory):
    image = token_registry.reference(f"ml/app-{uuid.uuid4().hex[:6]}", "v1")
    docker_push(
        docker_engine, busybox_image, image, "alice", registry_users.alice_password, tmp_path_factory.mktemp("seed")
    )
    return image


def test_secret_pulls_and_runs_the_image(docker_engine, basic_registry, registry_users, basic_image, tmp_path):
    reg = PrivateRegistry(f"{basic_registry.host}/ml", username="bob", password=registry_users.bob_password)
    (secret,) = reg.cluster_objects(namespaces=["ml-development"]).manifests
    env = config_from_secret(secret, tmp_path / "from-secret")
    docker_engine.docker("rmi", "--force", basic_image, check=False)
    docker_engine.docker("pull", basic_image, env=env)
    run = docker_engine.docker("run", "--rm", "--network", "none", basic_image, "echo", "pulled", env=env)
    assert run.stdout.strip() == "pulled"


def test_wrong_or_foreign_secret_cannot_pull(docker_engine, basic_registry, basic_image, tmp_path):
    wrong = PrivateRegistry(f"{basic_registry.host}/ml", username="bob", password="not-the-password")
    (secret,) = wrong.cluster_objects(namespaces=["ml-development"]).manifests
    docker_engine.docker("rmi", "--force", basic_image, check=False)
    refused = docker_engine.docker("pull", basic_image, env=config_from_secret(secret, tmp_path / "wrong"), check=False)
    assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower(), refused.stderr

    other_host = PrivateRegistry("harbor.example.com/ml", username="bob", password="x")
    (secret,) = other_host.cluster_objects(namespaces=["ml-development"]).manifests
    anonymous = docker_engine.docker(
        "pull", basic_image, env=config_from_secret(secret, tmp_path / "other"), check=False
    )
    assert anonymous.returncode != 0 and "no basic auth credentials" in anonymous.stderr, anonymous.stderr


def test_token_registry_secret_holds_the_read_only_user(
    docker_engine, token_registry, registry_users, token_image, tmp_path, canary_password, monkeypatch
):
    """alice can push (canary password); the cluster gets reader, who may only pull."""
    monkeypatch.setenv("REGISTRY_PASSWORD", canary_password)
    monkeypatch.setenv("REGISTRY_READER_TOKEN", registry_users.reader_password)
    reg = PrivateRegistry(
        f"{token_registry.host}/ml",
        username="alice",
        password_env="REGISTRY_PASSWORD",
        pull_username="reader",
        pull_password_env="REGISTRY_READER_TOKEN",
        ca_file=token_registry.ca_file,
    )
    objects = reg.cluster_objects(namespaces=["ml-development", "ml-production"])
    assert canary_password not in objects.yaml()
    secret = objects.manifests[0]
    auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
    assert list(auths) == [token_registry.host] and auths[token_registry.host]["username"] == "reader"

    docker_engine.docker("rmi", "--force", token_image, check=False)
    docker_engine.docker("pull", token_image, env=config_from_secret(secret, tmp_path / "reader"))
    assert canary_password not in docker_engine.log_path.read_text()
