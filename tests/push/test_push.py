"""The push path end to end: ImageSpec -> our builder -> a docker-CLI builder -> a real registry.

flytekit's own default builder needs buildx, BuildKit and internet access (it pulls uv, a
Dockerfile frontend and python base images), none of which exists on these machines. The
inner builder here is the library's ``docker-cli`` builder, which shells out to the docker CLI
with the inherited environment exactly as flytekit's default builder does. Everything else is
real: dockerd, the registries, their auth, the credential helper subprocess.
"""

import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec, ImageSpecBuilder
from helpers import docker_push, prepend_path, write_docker_config, write_fake_helper

from flyte_private_registry import (
    AuthenticationError,
    AuthorizationError,
    MissingEnvironmentVariable,
    PrivateRegistry,
    PushVerificationError,
    RegistryClient,
)
from flyte_private_registry.push._builder import BUILDER_NAME

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def build_env(docker_engine, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    ImageBuildEngine.build.cache_clear()
    yield
    ImageBuildEngine.build.cache_clear()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "payload.txt").write_text(f"payload {uuid.uuid4()}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _spec(registry: PrivateRegistry | str, **kwargs) -> ImageSpec:
    prefix = registry.registry if isinstance(registry, PrivateRegistry) else registry
    return ImageSpec(name=f"app-{uuid.uuid4().hex[:8]}", registry=prefix, copy=["payload.txt"], **kwargs)


def _leftover_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("fpr-docker-*")}


def _exists(registry, image: str, user: str, password: str, ca_file=None) -> bool:
    from flyte_private_registry._reference import ImageReference
    from flyte_private_registry.credentials import Credential

    ref = ImageReference.parse(image)
    cred = Credential(user, __import__("pydantic").SecretStr(password), source="test")
    with RegistryClient(registry.host, cred, ca_file=ca_file) as client:
        return client.exists(ref.repository, ref.reference)


def test_plain_imagespec_is_pushed_with_declared_credentials_then_skipped(
    basic_registry, registry_users, canary_password, user_docker_config, workdir, monkeypatch, capfd
):
    write_docker_config(user_docker_config, {"auths": {}, "currentContext": "default"})
    user_config_before = hashlib.sha256((user_docker_config / "config.json").read_bytes()).hexdigest()
    monkeypatch.setenv("REG_PASSWORD", registry_users.alice_password)
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password_env="REG_PASSWORD")
    spec = _spec(registry)
    assert spec.builder == BUILDER_NAME  # picked by priority: no builder= in user code
    leftovers = _leftover_dirs()

    ImageBuildEngine.build(spec)
    first = capfd.readouterr()
    assert "not found in private registry" in first.out and "Verified" in first.out
    assert _exists(basic_registry, spec.image_name(), "alice", registry_users.alice_password)

    ImageBuildEngine.build.cache_clear()
    ImageBuildEngine.build(spec)
    second = capfd.readouterr()
    assert "found in private registry" in second.out and "Skip building" in second.out
    assert "docker build" not in second.out + second.err

    text = first.out + first.err + second.out + second.err
    assert canary_password not in text
    assert hashlib.sha256((user_docker_config / "config.json").read_bytes()).hexdigest() == user_config_before
    assert _leftover_dirs() <= leftovers  # nothing new left behind (the sweep may remove stale ones)


def test_token_registry_over_tls(token_registry, registry_users, ca, workdir, capfd):
    registry = PrivateRegistry(
        f"{token_registry.host}/team", username="alice", password=registry_users.alice_password, ca_file=ca.ca_file
    )
    spec = _spec(registry)
    ImageBuildEngine.build(spec)
    assert "Verified" in capfd.readouterr().out
    assert _exists(token_registry, spec.image_name(), "alice", registry_users.alice_password, ca_file=ca.ca_file)


def test_creds_store_in_user_config_does_not_defeat_the_route(
    basic_registry, registry_users, user_docker_config, workdir, tmp_path, monkeypatch
):
    """Docker Desktop style: a credsStore that knows nothing of the host, and stale auths that docker ignores."""
    bin_dir = tmp_path / "helpers-bin"
    write_fake_helper(bin_dir, "desktop", {basic_registry.host: ("alice", "stale-password")})
    prepend_path(monkeypatch, bin_dir)
    write_docker_config(user_docker_config, {"credsStore": "desktop", "auths": {basic_registry.host: {}}})
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    spec = _spec(registry)
    ImageBuildEngine.build(spec)
    assert _exists(basic_registry, spec.image_name(), "alice", registry_users.alice_password)


def test_docker_config_credentials_are_found_by_the_library(
    basic_registry, registry_users, user_docker_config, workdir, tmp_path, monkeypatch, capfd
):
    """No credentials in code: the user's own credential helper has them, as after `docker login`."""
    bin_dir = tmp_path / "helpers-bin"
    write_fake_helper(bin_dir, "pass", {basic_registry.host: ("bob", registry_users.bob_password)})
    prepend_path(monkeypatch, bin_dir)
    write_docker_config(user_docker_config, {"credHelpers": {basic_registry.host: "pass"}})
    registry = PrivateRegistry(f"{basic_registry.host}/team")
    spec = _spec(registry)
    ImageBuildEngine.build(spec)
    assert "as 'bob' (credential helper docker-credential-pass (credHelpers))" in capfd.readouterr().out
    assert _exists(basic_registry, spec.image_name(), "bob", registry_users.bob_password)


def test_wrong_password_fails_fast_before_any_build(docker_engine, basic_registry, canary_password, workdir, capfd):
    wrong = f"wrong-{canary_password}"
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=wrong)
    spec = _spec(registry)
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        ImageBuildEngine.build(spec)
    assert time.monotonic() - started < 2.0
    message = str(info.value)
    assert basic_registry.host in message and "'alice'" in message and "explicit username/password" in message
    out = capfd.readouterr()
    assert "docker build" not in out.out + out.err
    assert wrong not in message + out.out + out.err
    images = docker_engine.docker("images", "--format", "{{.Repository}}").stdout
    assert spec.name not in images


def test_missing_env_var_is_named_before_any_build(basic_registry, workdir, monkeypatch, capfd):
    monkeypatch.delenv("HARBOR_TOKEN", raising=False)
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password_env="HARBOR_TOKEN")
    with pytest.raises(MissingEnvironmentVariable, match="HARBOR_TOKEN is not set"):
        ImageBuildEngine.build(_spec(registry))
    assert "docker build" not in capfd.readouterr().out


def test_pull_only_user_is_refused_before_any_build(token_registry, registry_users, ca, workdir, capfd):
    registry = PrivateRegistry(
        f"{token_registry.host}/team", username="reader", password=registry_users.reader_password, ca_file=ca.ca_file
    )
    with pytest.raises(AuthorizationError, match=r"granted only \['pull'\]"):
        ImageBuildEngine.build(_spec(registry))
    assert "docker build" not in capfd.readouterr().out


def test_force_push_rebuilds_an_existing_tag(basic_registry, registry_users, workdir, capfd):
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    spec = _spec(registry)
    ImageBuildEngine.build(spec)
    capfd.readouterr()
    ImageBuildEngine.build.cache_clear()
    ImageBuildEngine.build(spec.force_push())
    out = capfd.readouterr().out
    assert "Overwriting existing image" in out and "Verified" in out


class _BuildsButForgetsToPush(ImageSpecBuilder):
    def build_image(self, image_spec):
        return None


class _Recorder(ImageSpecBuilder):
    def __init__(self):
        self.calls = []

    def should_build(self, image_spec):
        self.calls.append(("should_build", image_spec.image_name(), os.environ.get("DOCKER_CONFIG")))
        return True

    def build_image(self, image_spec):
        self.calls.append(("build_image", image_spec.image_name(), os.environ.get("DOCKER_CONFIG")))
        return None


def test_a_builder_that_did_not_push_is_caught(basic_registry, registry_users, workdir, monkeypatch):
    ImageBuildEngine.register("forgetful", _BuildsButForgetsToPush(), priority=-5)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "forgetful")
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    with pytest.raises(PushVerificationError, match="is not in registry"):
        ImageBuildEngine.build(_spec(registry))


def test_unknown_inner_builder_is_a_configuration_error(basic_registry, registry_users, workdir, monkeypatch):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "nosuch")
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    with pytest.raises(ValueError, match=r"inner builder 'nosuch'.*registered builders: .*docker-cli"):
        ImageBuildEngine.build(_spec(registry))


def test_specs_outside_private_registries_go_to_the_usual_builder_untouched(workdir, monkeypatch):
    recorder = _Recorder()
    ImageBuildEngine.register("recorder", recorder, priority=50)
    try:
        PrivateRegistry("harbor.example.com/ml", username="a", password="b")  # declared, but not this spec's
        spec = _spec("public.example.com/team")
        assert spec.builder == BUILDER_NAME
        before = os.environ.get("DOCKER_CONFIG")
        ImageBuildEngine.build(spec)
    finally:
        del ImageBuildEngine._REGISTRY["recorder"]
    assert recorder.calls == [
        ("should_build", spec.image_name(), before),
        ("build_image", spec.image_name(), before),
    ]


def test_base_image_from_another_private_registry_is_pulled_with_its_credentials(
    docker_engine, busybox_image, basic_registry, token_registry, registry_users, ca, workdir, tmp_path
):
    base = token_registry.reference("base/busybox", uuid.uuid4().hex[:8])
    docker_push(docker_engine, busybox_image, base, "alice", registry_users.alice_password, tmp_path / "seed")
    docker_engine.docker("rmi", base)  # the build must pull it through the library's route
    PrivateRegistry(
        f"{token_registry.host}/base", username="reader", password=registry_users.reader_password, ca_file=ca.ca_file
    )
    target = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    spec = _spec(target, base_image=base, commands=["echo built-on-busybox > /built.txt"])
    ImageBuildEngine.build(spec)
    assert _exists(basic_registry, spec.image_name(), "alice", registry_users.alice_password)


def test_missing_base_image_in_private_registry_fails_before_build(
    basic_registry, token_registry, registry_users, ca, workdir, capfd
):
    PrivateRegistry(
        f"{token_registry.host}/base", username="reader", password=registry_users.reader_password, ca_file=ca.ca_file
    )
    target = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    with pytest.raises(Exception, match=r"base image .* is not in private registry"):
        ImageBuildEngine.build(_spec(target, base_image=token_registry.reference("base/nothing", "v0")))
    assert "docker build" not in capfd.readouterr().out


def test_read_only_credentials_are_enough_when_the_image_exists(
    docker_engine, busybox_image, token_registry, registry_users, ca, workdir, tmp_path, capfd
):
    """A CI job that only registers already-pushed images needs pull rights, not push rights."""
    registry = PrivateRegistry(
        f"{token_registry.host}/team", username="reader", password=registry_users.reader_password, ca_file=ca.ca_file
    )
    spec = _spec(registry)
    docker_push(docker_engine, busybox_image, spec.image_name(), "alice", registry_users.alice_password, tmp_path / "s")
    ImageBuildEngine.build(spec)
    assert "Skip building" in capfd.readouterr().out
    ImageBuildEngine.build.cache_clear()
    with pytest.raises(AuthorizationError, match=r"granted only \['pull'\]"):
        ImageBuildEngine.build(spec.force_push())  # rebuilding needs push: refused before any build


def test_private_base_image_under_a_public_target_still_gets_credentials(
    docker_engine, busybox_image, token_registry, registry_users, ca, workdir, tmp_path, monkeypatch
):
    """The target registry is not declared (no push check), but the base image's registry is."""
    base = token_registry.reference("base/busybox", uuid.uuid4().hex[:8])
    docker_push(docker_engine, busybox_image, base, "alice", registry_users.alice_password, tmp_path / "seed")
    docker_engine.docker("rmi", base)
    PrivateRegistry(
        f"{token_registry.host}/base", username="reader", password=registry_users.reader_password, ca_file=ca.ca_file
    )
    monkeypatch.setenv("FLYTE_PUSH_IMAGE_SPEC", "false")  # the undeclared target is not pushed anywhere
    recorder_env = {}

    class _LocalOnly(ImageSpecBuilder):
        def should_build(self, image_spec):
            return True

        def build_image(self, image_spec):
            recorder_env["DOCKER_CONFIG"] = os.environ.get("DOCKER_CONFIG")
            docker_engine.docker(
                "pull",
                image_spec.base_image,
                env={"DOCKER_CONFIG": os.environ["DOCKER_CONFIG"], "PATH": os.environ["PATH"]},
            )
            return None

    ImageBuildEngine.register("local-only", _LocalOnly(), priority=50)
    try:
        ImageBuildEngine.build(_spec("public.example.com/team", base_image=base))
    finally:
        del ImageBuildEngine._REGISTRY["local-only"]
    assert recorder_env["DOCKER_CONFIG"] and "fpr-docker-" in recorder_env["DOCKER_CONFIG"]
    assert docker_engine.image_digest(base) is not None
