"""A docker-cli build FROM a private base image, under a docker config whose credential store cannot run.

Docker Desktop writes ``"credsStore": "desktop"``; copied to a CI machine without
``docker-credential-desktop``, docker's classic builder collects every credential through
``GetAllCredentials``, which gives up on the broken store and sends none, so the pull of a
private base fails with ``no basic auth credentials`` although ``credHelpers`` routes the host
to our helper. The temporary config must leave such a store (and helpers that cannot run) out.
"""

from __future__ import annotations

import json
import uuid

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
from helpers import docker_push, prepend_path, write_docker_config, write_fake_helper
from pydantic import SecretStr

from flyte_private_registry import PrivateRegistry
from flyte_private_registry._reference import RegistryPrefix
from flyte_private_registry.credentials import Credential
from flyte_private_registry.credentials._docker_config import DockerConfigKeychain
from flyte_private_registry.push._build_env import private_docker_config

pytestmark = pytest.mark.integration

#: A Docker Desktop config as copied to CI: docker-credential-desktop and -osxkeychain cannot run here;
#: docker-credential-pass is installed by the fixture and must be kept.
DESKTOP_CONFIG = {
    "credsStore": "desktop",
    "credHelpers": {"gcr.io": "osxkeychain", "quay.io": "pass"},
    "auths": {},
    "currentContext": "default",
}


@pytest.fixture
def desktop_config(user_docker_config, tmp_path, monkeypatch):
    bin_dir = tmp_path / "helpers-bin"
    write_fake_helper(bin_dir, "pass", {})
    prepend_path(monkeypatch, bin_dir)
    write_docker_config(user_docker_config, DESKTOP_CONFIG)
    return user_docker_config


def test_the_temporary_config_leaves_out_helpers_that_cannot_run(desktop_config):
    before = (desktop_config / "config.json").read_bytes()
    with private_docker_config({"harbor.example.com": Credential("a", SecretStr("pw"), source="explicit")}) as env:
        config = json.loads((env.directory / "config.json").read_text())
    assert "credsStore" not in config
    assert config["credHelpers"] == {"quay.io": "pass", "harbor.example.com": "flyte-private-registry"}
    assert config["currentContext"] == "default"  # everything else is the user's
    assert (desktop_config / "config.json").read_bytes() == before  # the user's file is never written


def test_explain_says_the_broken_store_is_left_out_of_builds(desktop_config):
    miss = DockerConfigKeychain().resolve(RegistryPrefix.parse("harbor.example.com/ml"))
    assert "docker-credential-desktop is not on PATH" in miss.reason
    assert "leave this credsStore out of their temporary docker config" in miss.reason


def test_private_base_image_builds_under_a_broken_creds_store(
    docker_engine, busybox_image, basic_registry, registry_users, desktop_config, tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    monkeypatch.chdir(tmp_path)
    base = basic_registry.reference("team/base", uuid.uuid4().hex[:8])
    docker_push(docker_engine, busybox_image, base, "alice", registry_users.alice_password, tmp_path / "seed")
    docker_engine.docker("rmi", base)  # the build must pull it, through the library's route
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    spec = ImageSpec(
        name=f"on-private-base-{uuid.uuid4().hex[:6]}",
        registry=registry.registry,
        base_image=base,
        commands=["echo built-on-a-private-base > /built.txt"],
    )
    ImageBuildEngine.build.cache_clear()
    try:
        ImageBuildEngine.build(spec)
    finally:
        ImageBuildEngine.build.cache_clear()
    out = capfd.readouterr()
    assert "no basic auth credentials" not in out.out + out.err
    assert "Verified" in out.out
    ran = docker_engine.docker("run", "--rm", "--network", "none", spec.image_name(), "cat", "/built.txt")
    assert ran.stdout == "built-on-a-private-base\n"
