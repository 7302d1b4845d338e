"""Messages a new user meets in the first commands: `check` with a URL, `explain` at 80 columns, `doctor -m`."""

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
CLI = str(BIN / "flyte-private-registry")


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE_PRIVATE_REGISTR")}
    full.update(env)
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=full, cwd=cwd, timeout=120)


def test_check_with_a_url_says_drop_the_scheme(tmp_path):
    result = _cli("check", "https://harbor.example.com/ml", cwd=tmp_path)
    assert result.returncode == 2
    assert "has a URL scheme; drop it (use 'harbor.example.com/ml')" in result.stderr
    assert "malformed registry host 'https:'" not in result.stderr and "Traceback" not in result.stderr


def test_explain_at_80_columns_keeps_the_docker_config_path_whole(tmp_path):
    config_dir = tmp_path / "a-docker-config-directory-with-a-long-name" / "nested"
    config_dir.mkdir(parents=True)
    (config_dir / "config.json").write_text('{"auths": {"other.example.com": {"auth": "eDp5"}}}')
    path = str(config_dir / "config.json")
    assert len(path) > 60  # a table's column would have to fold it at 80 columns
    result = _cli("explain", "harbor.example.com/ml", cwd=tmp_path, COLUMNS="80", DOCKER_CONFIG=str(config_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"  - docker config {path}" in lines
    assert any(line.strip().startswith("missing:") for line in lines), result.stdout


def test_doctor_lists_code_declarations_with_m_and_says_what_to_run_next(tmp_path):
    workflow = tmp_path / "wf.py"
    workflow.write_text(
        "from flyte_private_registry import PrivateRegistry\n"
        "reg = PrivateRegistry('harbor.example.com/ml', username='alice', password_env='DOCTOR_UNSET_TOKEN')\n"
    )
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock", "COLUMNS": "80"}
    without = _cli("doctor", cwd=tmp_path, **env)
    assert "harbor.example.com/ml" not in without.stdout
    assert "code declarations: not loaded" in without.stdout
    assert "next: flyte-private-registry -m workflows.py doctor" in without.stdout

    result = _cli("-m", str(workflow), "doctor", cwd=tmp_path, **env)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert f"FAIL registry harbor.example.com/ml: declared in code ({workflow}): no credentials" in out
    assert "DOCTOR_UNSET_TOKEN is not set" in out
    assert f"next: `flyte-private-registry -m {workflow} explain harbor.example.com/ml`" in out
    # Every failed check is followed by the next thing to run.
    lines = out.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith("FAIL ")]
    assert len(failed) >= 2  # the daemon and the registry
    for index in failed:
        assert lines[index + 1].startswith("    next: "), lines[index]
    assert "FAIL docker daemon" in out and "sudo systemctl start docker" in out


def test_doctor_fails_a_creds_store_whose_helper_is_missing(tmp_path):
    config_dir = tmp_path / "dc"
    config_dir.mkdir()
    (config_dir / "config.json").write_text('{"credsStore": "desktop", "auths": {}}')
    result = _cli("doctor", cwd=tmp_path, DOCKER_CONFIG=str(config_dir), PATH=f"{BIN}:/usr/local/bin:/usr/bin:/bin")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("FAIL docker-credential-desktop"))
    assert '"credsStore": "desktop" names it but it is not on PATH' in lines[index]
    assert (
        lines[index + 1] == f'    next: remove "credsStore": "desktop" from {config_dir / "config.json"} (a config '
        "copied from Docker Desktop), or install docker-credential-desktop"
    )
