"""`pyflyte package` with no library import in the workflow: the entry point and config do it all."""

import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import uuid
from pathlib import Path

import pytest
from flyteidl.admin import task_pb2
from pydantic import SecretStr

from flyte_private_registry import RegistryClient
from flyte_private_registry._reference import ImageReference
from flyte_private_registry.credentials import Credential

pytestmark = pytest.mark.integration

PYFLYTE = str(Path(sys.executable).with_name("pyflyte"))


def _workflow(directory: Path, registry: str, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "wf.py").write_text(
        textwrap.dedent(
            f"""
            from flytekit import ImageSpec, task, workflow

            image = ImageSpec(name={name!r}, registry={registry!r}, copy=["wf.py"])

            @task(container_image=image)
            def private(x: int) -> int:
                return x + 1

            @task
            def public(x: int) -> int:
                return x * 2

            @workflow
            def wf(x: int = 1) -> int:
                return public(x=private(x=x))
            """
        )
    )


def _package(directory: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYFLYTE, *flags, "--pkgs", "wf", "package", "--force", "--output", "out.tgz"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _flat(output: str) -> str:
    """pyflyte's rich panel wraps long lines inside a box: drop the box and fold the white space."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def _task_images(archive: Path) -> dict[str, str]:
    images = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.endswith("_1.pb"):
                spec = task_pb2.TaskSpec()
                spec.ParseFromString(tar.extractfile(member).read())
                images[spec.template.id.name] = spec.template.container.image
    return images


@pytest.fixture
def pyflyte_env(docker_engine, basic_registry, tmp_path):
    env = docker_engine.env(
        {
            "FLYTE_PRIVATE_REGISTRY_BUILDER": "docker-cli",
            "FLYTE_PRIVATE_REGISTRIES": json.dumps(
                [{"prefix": f"{basic_registry.host}/team", "username": "alice", "password_env": "REG_PASSWORD"}]
            ),
            "DOCKER_CONFIG": str(tmp_path / "user-docker-config"),
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        }
    )
    return env


def test_pyflyte_package_pushes_and_serializes_the_private_image(
    basic_registry, registry_users, canary_password, pyflyte_env, tmp_path
):
    name = f"wf-{uuid.uuid4().hex[:8]}"
    project = tmp_path / "project"
    _workflow(project, f"{basic_registry.host}/team", name)
    result = _package(project, {**pyflyte_env, "REG_PASSWORD": registry_users.alice_password})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Verified" in output and "Successfully packaged" in output
    assert canary_password not in output

    images = _task_images(project / "out.tgz")
    private_image = images["wf.private"]
    assert private_image.startswith(f"{basic_registry.host}/team/{name}:")
    ref = ImageReference.parse(private_image)
    cred = Credential("alice", SecretStr(registry_users.alice_password), source="test")
    with RegistryClient(basic_registry.host, cred) as client:
        assert client.exists(ref.repository, ref.reference), "the serialized image must really be in the registry"


def test_pyflyte_package_fails_instead_of_assuming_the_image_exists(
    basic_registry, canary_password, pyflyte_env, tmp_path
):
    project = tmp_path / "project"
    _workflow(project, f"{basic_registry.host}/team", f"wf-{uuid.uuid4().hex[:8]}")
    wrong = f"wrong-{canary_password}"
    result = _package(project, {**pyflyte_env, "REG_PASSWORD": wrong})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "assumes the image" not in output
    assert f"registry {basic_registry.host} refused user 'alice'" in _flat(output)
    assert "env REG_PASSWORD" in _flat(output)
    assert wrong not in output
    assert not (project / "out.tgz").exists()
    # One clean block, as pyflyte prints its own user errors: no traceback unless asked for.
    assert "Traceback" not in output and "site-packages" not in output, output
    assert "Error" in output

    verbose = _package(project, {**pyflyte_env, "REG_PASSWORD": wrong}, "-v")
    verbose_output = verbose.stdout + verbose.stderr
    assert verbose.returncode != 0
    assert "Traceback" in verbose_output and "AuthenticationError" in verbose_output, verbose_output
    assert wrong not in verbose_output


def test_pyflyte_package_names_the_missing_env_var(basic_registry, pyflyte_env, tmp_path):
    project = tmp_path / "project"
    _workflow(project, f"{basic_registry.host}/team", f"wf-{uuid.uuid4().hex[:8]}")
    env = {k: v for k, v in pyflyte_env.items() if k != "REG_PASSWORD"}
    result = _package(project, env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "REG_PASSWORD is not set" in _flat(output)
    assert "docker build" not in output
    assert "Traceback" not in output, output
    assert os.environ.get("REG_PASSWORD") is None


@pytest.mark.parametrize("declared", ["config", "code"])
def test_a_refused_login_names_the_command_that_shows_where_the_credentials_came_from(
    basic_registry, canary_password, pyflyte_env, tmp_path, declared
):
    """Following the hint must show the same registry and source the refusal named, not a bare host."""
    project = tmp_path / "project"
    prefix = f"{basic_registry.host}/team"
    _workflow(project, prefix, f"wf-{uuid.uuid4().hex[:8]}")
    env = {**pyflyte_env, "REG_PASSWORD": f"wrong-{canary_password}"}
    if declared == "code":  # the module declares it; nothing in the environment does
        env.pop("FLYTE_PRIVATE_REGISTRIES")
        source = (project / "wf.py").read_text()
        declaration = f"reg = PrivateRegistry({prefix!r}, username='alice', password_env='REG_PASSWORD')\n"
        (project / "wf.py").write_text("from flyte_private_registry import PrivateRegistry\n" + declaration + source)
    result = _package(project, env)
    output = _flat(result.stdout + result.stderr)
    assert result.returncode != 0 and f"registry {basic_registry.host} refused user 'alice'" in output
    hinted = re.search(r"`(flyte-private-registry [^`]*)` shows where the credentials come from", output)
    assert hinted is not None, output
    expected = "-m wf explain" if declared == "code" else "explain"
    assert hinted[1] == f"flyte-private-registry {expected} {prefix}"

    cli = str(Path(sys.executable).with_name("flyte-private-registry"))
    shown = subprocess.run(
        [cli, *hinted[1].split()[1:]], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert f"{prefix} (declared" in shown.stdout and "using env REG_PASSWORD (user 'alice')" in shown.stdout
    assert canary_password not in shown.stdout + shown.stderr + result.stdout + result.stderr
