"""`login -m wf.py HOST` for registries declared only in workflow code, then plain `docker push`.

Every step is its own process, as for a user: the CLI that logs in, the docker CLI that pushes,
and the credential helper docker starts. The password lives only in an env var.
"""

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from rig.docker_engine import DockerCommandError

from flyte_private_registry.push._exported import EXPORT_FILE

BIN = Path(sys.executable).parent
CLI = str(BIN / "flyte-private-registry")


def _workflow(directory: Path, body: str) -> Path:
    path = directory / "wf.py"
    path.write_text("from flyte_private_registry import PrivateRegistry\n" + body)
    return path


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's shell: our bin on PATH, no registry config anywhere but the workflow code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_PRIVATE_REGISTR", "WF_"))}
    env.update(PATH=f"{BIN}:/usr/local/bin:/usr/bin:/bin", XDG_CONFIG_HOME=str(tmp_path / "xdg"), **extra)
    return env


def _cli(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def _all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


@pytest.mark.integration
def test_login_m_then_docker_push_uses_the_code_declaration(
    docker_engine, basic_registry, busybox_image, tmp_path, canary_password
):
    prefix = f"{basic_registry.host}/team"
    workflow = _workflow(
        tmp_path, f"harbor = PrivateRegistry({prefix!r}, username_env='WF_USER', password_env='WF_PASSWORD')\n"
    )
    config_dir = tmp_path / "dc"
    env = _env(tmp_path, WF_USER="alice", WF_PASSWORD=canary_password, DOCKER_CONFIG=str(config_dir))

    login = _cli(tmp_path, "-m", str(workflow), "login", prefix, env=env)
    assert login.returncode == 0, login.stderr
    assert "Login verified" in login.stdout and "env WF_USER/WF_PASSWORD" in login.stdout
    assert f"saved the declaration of {prefix} for the helper" in login.stdout
    config = json.loads((config_dir / "config.json").read_text())
    assert config["credHelpers"] == {basic_registry.host: "flyte-private-registry"}

    saved = config_dir / EXPORT_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["registries"] == [
        {"prefix": prefix, "username_env": "WF_USER", "password_env": "WF_PASSWORD", "provider": "generic"}
    ]
    secrets = [canary_password, f"alice:{canary_password}"]
    for secret in secrets:
        for form in (secret.encode(), base64.b64encode(secret.encode())):
            assert form not in _all_bytes(config_dir), "a secret reached the docker config dir"
        assert secret not in login.stdout + login.stderr

    # A separate docker process, no workflow code, no config file: only the env var holds the password.
    image = f"{prefix}/from-code:v1"
    docker_engine.docker("tag", busybox_image, image)
    pushed = docker_engine.docker("push", image, env={**env, "FLYTE_PRIVATE_REGISTRIES": None})
    assert "digest: sha256:" in pushed.stdout

    # Without the env var docker only says "no basic auth credentials"; the helper, run the way
    # docs/troubleshooting.md says, names the variable.
    no_env = {k: v for k, v in env.items() if k != "WF_PASSWORD"}
    missing = docker_engine.docker("push", image, env={**env, "WF_PASSWORD": None}, check=False)
    assert missing.returncode != 0 and "no basic auth credentials" in missing.stderr, missing.stderr
    helper = [str(BIN / "docker-credential-flyte-private-registry"), "get"]
    said = subprocess.run(helper, input=basic_registry.host, capture_output=True, text=True, env=no_env)
    assert said.returncode == 1 and "WF_PASSWORD" in said.stdout, said.stdout

    logout = _cli(tmp_path, "-m", str(workflow), "logout", prefix, env=env)
    assert logout.returncode == 0, logout.stderr
    assert "removed the flyte-private-registry route" in logout.stdout
    assert f"forgot the saved declaration of {prefix}" in logout.stdout
    assert not saved.exists()
    assert "credHelpers" not in json.loads((config_dir / "config.json").read_text())
    with pytest.raises(DockerCommandError, match="no basic auth credentials"):
        docker_engine.docker("push", image, env=env)


def test_literal_password_in_code_is_refused_with_the_declaration_and_the_fix(tmp_path, canary_password):
    workflow = _workflow(
        tmp_path, f"harbor = PrivateRegistry('harbor.example.com/ml', username='alice', password={canary_password!r})\n"
    )
    config_dir = tmp_path / "dc"
    env = _env(tmp_path, DOCKER_CONFIG=str(config_dir))
    for command in (["login", "harbor.example.com/ml"], ["configure-docker", "harbor.example.com/ml"]):
        result = _cli(tmp_path, "-m", str(workflow), *command, env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        message = " ".join(result.stderr.split())
        assert (
            f"PrivateRegistry('harbor.example.com/ml') declared in workflow code loaded with -m {workflow} "
            "cannot be handed to docker's credential helper" in message
        )
        assert "password= is a literal password" in message
        assert "password_env='NAME'" in message and "flyte-private-registry.toml" in message
        assert "Traceback" not in result.stderr and canary_password not in result.stdout + result.stderr
        assert not config_dir.exists(), "a refused declaration must change nothing"


def test_objects_that_exist_only_in_the_process_are_refused(tmp_path):
    workflow = _workflow(
        tmp_path,
        "from datetime import datetime, timezone\n"
        "ecr = PrivateRegistry.ecr(account_id='123456789012', region='us-east-1',\n"
        "                          clock=lambda: datetime.now(timezone.utc))\n",
    )
    env = _env(tmp_path, DOCKER_CONFIG=str(tmp_path / "dc"))
    result = _cli(
        tmp_path, "-m", str(workflow), "configure-docker", "123456789012.dkr.ecr.us-east-1.amazonaws.com", env=env
    )
    assert result.returncode == 2
    assert "provider option clock= holds a function" in " ".join(result.stderr.split())


def test_configure_docker_saves_provider_options_and_skips_a_sibling_it_cannot_save(tmp_path, canary_password):
    host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    workflow = _workflow(
        tmp_path,
        f"ml = PrivateRegistry.ecr('{host}/ml', profile='ci', create_repository=False, password_env='X',"
        " username='AWS')\n"
        f"legacy = PrivateRegistry('{host}/legacy', username='bob', password={canary_password!r})\n",
    )
    config_dir = tmp_path / "dc"
    env = _env(tmp_path, DOCKER_CONFIG=str(config_dir))
    result = _cli(tmp_path, "-m", str(workflow), "configure-docker", f"{host}/ml", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["saved"] == [f"{host}/ml"] and list(data["skipped"]) == [f"{host}/legacy"]
    assert canary_password not in result.stdout + result.stderr
    (entry,) = json.loads((config_dir / EXPORT_FILE).read_text())["registries"]
    assert entry == {
        "prefix": f"{host}/ml",
        "username": "AWS",
        "password_env": "X",
        "provider": "ecr",
        "create_repository": False,
        "profile": "ci",
    }
    undo = _cli(tmp_path, "configure-docker", host, "--undo", env=env)
    assert undo.returncode == 0 and "forgot the saved declaration" in undo.stdout
    assert not (config_dir / EXPORT_FILE).exists()


def test_helper_reads_saved_declarations_and_distrusts_a_file_others_can_write(tmp_path, canary_password):
    """The helper alone (as docker runs it): a saved declaration answers; a world-writable file is refused."""
    workflow = _workflow(
        tmp_path, "reg = PrivateRegistry('harbor.example.com/ml', username='alice', password_env='WF_TOKEN')\n"
    )
    config_dir = tmp_path / "dc"
    env = _env(tmp_path, DOCKER_CONFIG=str(config_dir), WF_TOKEN=canary_password)
    assert _cli(tmp_path, "-m", str(workflow), "configure-docker", "harbor.example.com", env=env).returncode == 0
    helper = [str(BIN / "docker-credential-flyte-private-registry"), "get"]
    answer = subprocess.run(helper, input="harbor.example.com", capture_output=True, text=True, env=env, cwd="/")
    assert answer.returncode == 0, answer.stdout
    assert json.loads(answer.stdout) == {
        "ServerURL": "harbor.example.com",
        "Username": "alice",
        "Secret": canary_password,
    }
    (config_dir / EXPORT_FILE).chmod(0o666)
    refused = subprocess.run(helper, input="harbor.example.com", capture_output=True, text=True, env=env, cwd="/")
    assert refused.returncode == 1 and "writable by others, so it is not trusted" in refused.stdout
