"""The temporary DOCKER_CONFIG: what it holds, its permissions, and that it always goes away."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import write_docker_config
from pydantic import SecretStr

from flyte_private_registry.credentials import Credential
from flyte_private_registry.push._build_env import HELPER_PROGRAM, patched_environ, private_docker_config


def _cred(password: str) -> Credential:
    return Credential("alice", SecretStr(password), source="explicit")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_routes_hosts_to_helper_over_creds_store(user_docker_config, canary_password):
    (user_docker_config / "cli-plugins").mkdir()
    write_docker_config(
        user_docker_config,
        {
            "credsStore": "desktop",
            "auths": {"ghcr.io": {}},
            "credHelpers": {"gcr.io": "gcloud"},
            "currentContext": "x",
        },
    )
    before = (user_docker_config / "config.json").read_bytes()
    with private_docker_config({"harbor.example.com": _cred(canary_password), "docker.io": _cred("x")}) as env:
        config = json.loads((env.directory / "config.json").read_text())
        assert config["credsStore"] == "desktop" and config["currentContext"] == "x"  # user's settings kept
        assert config["credHelpers"] == {
            "gcr.io": "gcloud",
            "harbor.example.com": "flyte-private-registry",
            "https://index.docker.io/v1/": "flyte-private-registry",
        }
        assert canary_password not in (env.directory / "config.json").read_text()
        assert (env.directory / "cli-plugins").resolve() == (user_docker_config / "cli-plugins").resolve()
        assert _mode(env.directory) == 0o700
        assert _mode(env.directory / "config.json") == 0o600
        assert _mode(env.directory / "flyte-private-registry-session.json") == 0o600
        assert _mode(env.directory / "bin" / HELPER_PROGRAM) == 0o700
        assert env.env["DOCKER_CONFIG"] == str(env.directory)
        assert env.env["PATH"].startswith(str(env.directory / "bin") + os.pathsep)
        directory = env.directory
    assert not directory.exists()
    assert (user_docker_config / "config.json").read_bytes() == before


def test_removed_on_error_and_keyboard_interrupt(user_docker_config):
    for exc in (RuntimeError("build failed"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), private_docker_config({"h.example.com": _cred("pw")}) as env:
            directory = env.directory
            raise exc
        assert not directory.exists()


def test_helper_shim_serves_the_session(user_docker_config, canary_password):
    with private_docker_config({"harbor.example.com:8443": _cred(canary_password)}) as env:
        run_env = {**os.environ, **env.env}
        got = subprocess.run(
            [HELPER_PROGRAM, "get"],
            input="https://harbor.example.com:8443",
            env=run_env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(got.stdout) == {
            "ServerURL": "https://harbor.example.com:8443",
            "Username": "alice",
            "Secret": canary_password,
        }
        missing = subprocess.run(
            [HELPER_PROGRAM, "get"], input="other.example.com", env=run_env, capture_output=True, text=True
        )
        assert missing.returncode == 1 and missing.stdout.strip() == "credentials not found in native keychain"
        listed = subprocess.run([HELPER_PROGRAM, "list"], env=run_env, capture_output=True, text=True, check=True)
        assert json.loads(listed.stdout) == {"harbor.example.com:8443": "alice"}
        store = subprocess.run([HELPER_PROGRAM, "store"], input="{}", env=run_env, capture_output=True, text=True)
        assert store.returncode == 1 and "read-only" in store.stdout
        assert canary_password not in listed.stdout + store.stdout + missing.stdout


def test_patched_environ_restores(monkeypatch):
    monkeypatch.setenv("KEEP", "1")
    monkeypatch.delenv("NEW_ONE", raising=False)
    with pytest.raises(ValueError), patched_environ({"KEEP": "2", "NEW_ONE": "x"}):
        assert os.environ["KEEP"] == "2" and os.environ["NEW_ONE"] == "x"
        raise ValueError
    assert os.environ["KEEP"] == "1" and "NEW_ONE" not in os.environ


def test_sigterm_during_build_removes_the_directory(tmp_path, user_docker_config):
    """A real process gets SIGTERM while "building"; its temp config must be gone afterwards."""
    marker = tmp_path / "dir.txt"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pydantic import SecretStr
        from flyte_private_registry.push._build_env import private_docker_config, terminate_as_exit
        from flyte_private_registry.credentials import Credential
        with private_docker_config({{"h.example.com": Credential("a", SecretStr("pw"), "x")}}) as env, \\
                terminate_as_exit():
            open({str(marker)!r}, "w").write(str(env.directory))
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(200):
        if marker.exists() and marker.read_text():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    directory = Path(marker.read_text())
    assert directory.exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert not directory.exists()
