"""What the inner builder needs is checked before any build: one clear error, never for an existing image.

The real docker CLI on these machines has no buildx (Debian's docker.io), which is exactly the
machine where flytekit's default builder used to die in ``unknown flag: --push`` after the registry
work. A ``docker`` shim on PATH records every call and runs the real CLI, so the tests can prove
that no ``docker build`` was started.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec, ImageSpecBuilder
from helpers import docker_push, prepend_path

from flyte_private_registry import ConfigurationError, PrivateRegistry
from flyte_private_registry.push import _requirements

pytestmark = pytest.mark.integration


@pytest.fixture
def docker_calls(tmp_path, monkeypatch, docker_engine):
    """Every docker CLI call of the test, through a recording shim in front of the real CLI."""
    real = shutil.which("docker")
    assert real, "the docker CLI must be installed (apt-get install docker.io)"
    bin_dir = tmp_path / "docker-shim"
    bin_dir.mkdir()
    log = tmp_path / "docker-calls.log"
    shim = bin_dir / "docker"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\nexec {shlex.quote(real)} "$@"\n')
    shim.chmod(0o755)
    prepend_path(monkeypatch, bin_dir)
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    ImageBuildEngine.build.cache_clear()
    yield lambda: log.read_text().splitlines() if log.exists() else []
    ImageBuildEngine.build.cache_clear()


@pytest.fixture
def registry(basic_registry, registry_users):
    return PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)


def _spec(registry: PrivateRegistry) -> ImageSpec:
    return ImageSpec(name=f"app-{uuid.uuid4().hex[:8]}", registry=registry.registry, commands=["true"])


def _no_buildx_here() -> None:
    done = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, check=False)
    assert done.returncode != 0, "this test needs a docker CLI without buildx (Debian's docker.io)"


def test_default_builder_without_buildx_is_one_clear_error_before_any_build(docker_calls, registry, monkeypatch):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "default")
    _no_buildx_here()
    spec = _spec(registry)
    with pytest.raises(ConfigurationError) as info:
        ImageBuildEngine.build(spec)
    message = str(info.value)
    assert message.startswith(f"cannot build {spec.image_name()} with the 'default' ImageSpec builder on this machine")
    assert message.count("\n- ") == 1  # the daemon answers: buildx is the only thing missing
    assert "- docker buildx (BuildKit)" in message and "`docker buildx version` said: " in message
    assert "apt-get install docker-buildx" in message  # fix one
    assert 'PrivateRegistry(..., builder="docker-cli")' in message  # fix two, both spellings
    assert "FLYTE_PRIVATE_REGISTRY_BUILDER=docker-cli" in message
    assert not [call for call in docker_calls() if call.split()[0] in ("build", "push")], docker_calls()
    assert "buildx version" in docker_calls()


def test_no_check_and_no_error_for_an_image_that_exists(
    docker_calls, docker_engine, busybox_image, basic_registry, registry_users, registry, tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "default")
    spec = _spec(registry)
    docker_push(docker_engine, busybox_image, spec.image_name(), "alice", registry_users.alice_password, tmp_path / "s")
    before = len(docker_calls())
    ImageBuildEngine.build(spec)  # no buildx here, yet nothing to build: no error
    assert "Skip building" in capfd.readouterr().out
    assert docker_calls()[before:] == []  # not even the probe ran


def test_every_missing_thing_is_in_the_one_error(docker_calls, registry, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "default")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    with pytest.raises(ConfigurationError) as info:
        ImageBuildEngine.build(_spec(registry))
    message = str(info.value)
    assert message.count("\n- ") == 2
    assert "- docker buildx (BuildKit)" in message
    assert "- a reachable docker daemon: `docker version` said: " in message and "no-daemon.sock" in message
    assert "sudo systemctl start docker" in message and "DOCKER_HOST" in message


def test_docker_cli_builder_needs_a_daemon(docker_calls, registry, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    with pytest.raises(ConfigurationError, match=r"with the 'docker-cli' ImageSpec builder") as info:
        ImageBuildEngine.build(_spec(registry))
    assert str(info.value).count("\n- ") == 1 and "a reachable docker daemon" in str(info.value)
    assert not [call for call in docker_calls() if call.split()[0] == "build"]


def test_no_docker_cli_at_all(registry, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "default")
    ImageBuildEngine.build.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as info:
            ImageBuildEngine.build(_spec(registry))
    finally:
        ImageBuildEngine.build.cache_clear()
    message = str(info.value)
    assert message.count("\n- ") == 1 and "- the docker CLI: `docker` is not on PATH" in message
    assert "apt-get install docker.io" in message


class _StandIn(ImageSpecBuilder):
    """Registered under a real builder's name, to prove the wrapper checks that builder's needs."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def build_image(self, image_spec):
        self.built.append(image_spec.image_name())
        return image_spec.image_name()


def test_envd_without_its_binary(docker_calls, registry, monkeypatch):
    assert shutil.which("envd") is None, "this test needs a PATH without envd"
    stand_in = _StandIn()
    previous = ImageBuildEngine._REGISTRY.get("envd")
    ImageBuildEngine.register("envd", stand_in, priority=5)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "envd")
    try:
        with pytest.raises(ConfigurationError) as info:
            ImageBuildEngine.build(_spec(registry))
    finally:
        if previous is None:
            del ImageBuildEngine._REGISTRY["envd"]
        else:
            ImageBuildEngine._REGISTRY["envd"] = previous
    message = str(info.value)
    assert "with the 'envd' ImageSpec builder" in message and "- the envd binary: `envd` is not on PATH" in message
    assert "pip install 'envd>=0.3.39'" in message and "FLYTE_PRIVATE_REGISTRY_BUILDER=docker-cli" in message
    assert stand_in.built == []


def test_buildkit_switched_off_is_named(monkeypatch):
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    missing = _requirements.buildkit()
    assert missing is not None and "DOCKER_BUILDKIT=0 selects docker's classic builder" in missing.detail
    assert missing.fixes[0] == "unset DOCKER_BUILDKIT (or set it to 1)"
