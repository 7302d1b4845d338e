"""The CLI as scripts use it: exit codes, --json, no secrets in output, reversible docker config edits."""

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import prepend_path, write_docker_config, write_fake_helper

from flyte_private_registry.cli import main

CLI = str(Path(sys.executable).with_name("flyte-private-registry"))


@pytest.fixture
def declared(basic_registry, registry_users, monkeypatch):
    monkeypatch.setenv("REG_USER", "alice")
    monkeypatch.setenv("REG_PASSWORD", registry_users.alice_password)
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES",
        json.dumps(
            [{"prefix": f"{basic_registry.host}/team", "username_env": "REG_USER", "password_env": "REG_PASSWORD"}]
        ),
    )
    return f"{basic_registry.host}/team"


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.mark.integration
def test_check_ok_and_json(declared, canary_password):
    result = _run("check", declared)
    assert result.exit_code == 0, result.output
    assert "credentials: user 'alice' from env REG_USER/REG_PASSWORD" in result.output
    assert "login: basic auth accepted" in result.output
    data = json.loads(_run("check", declared, "--json").output)
    assert data["ok"] is True and data["declared"] is True
    assert [s["name"] for s in data["steps"]] == ["credentials", "login", "push scope"]
    assert canary_password not in result.output


@pytest.mark.integration
def test_check_missing_tag_and_wrong_password_exit_1(declared, monkeypatch, canary_password):
    missing = _run("check", f"{declared}/nothing:v0")
    assert missing.exit_code == 1 and "tag exists: team/nothing:v0 is not in" in missing.output
    monkeypatch.setenv("REG_PASSWORD", "wrong-" + canary_password)
    refused = _run("check", declared)
    assert refused.exit_code == 1 and "refused user 'alice'" in refused.output
    assert canary_password not in refused.output


def test_check_unreachable_registry_exit_3():
    from rig import free_port

    result = _run("check", f"127.0.0.1:{free_port()}/team")
    assert result.exit_code == 3 and "reachable: cannot reach registry" in result.output


def test_check_unset_env_var_is_a_config_error_exit_2(monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES",
        json.dumps([{"prefix": "harbor.example.com/ml", "username": "u", "password_env": "NOPE_TOKEN"}]),
    )
    result = _run("check", "harbor.example.com/ml")
    assert result.exit_code == 2 and "configuration: environment variable NOPE_TOKEN is not set" in result.output
    bad = subprocess.run([CLI, "explain", "https://bad host"], capture_output=True, text=True)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_explain_json_lists_every_source_without_secrets(monkeypatch, user_docker_config, canary_password):
    monkeypatch.setenv("H_TOKEN", canary_password)
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES",
        json.dumps([{"prefix": "harbor.example.com/ml", "username": "alice", "password_env": "H_TOKEN"}]),
    )
    write_docker_config(user_docker_config, {"auths": {"harbor.example.com": {"auth": "Ym9iOnB3"}}})
    result = subprocess.run([CLI, "explain", "harbor.example.com/ml/app:v1", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "env H_TOKEN" and data["username"] == "alice"
    assert [a["outcome"] for a in data["attempts"]] == ["used", "found"]
    assert canary_password not in result.stdout + result.stderr


def test_configure_docker_is_reversible(tmp_path):
    config_dir = tmp_path / "dc"
    write_docker_config(config_dir, {"credHelpers": {"harbor.example.com": "ecr-login"}, "auths": {}})
    (config_dir / "config.json").chmod(0o644)
    result = _run("configure-docker", "harbor.example.com", "ghcr.io", "docker.io", "--docker-config", str(config_dir))
    assert result.exit_code == 0, result.output
    config = json.loads((config_dir / "config.json").read_text())
    assert config["credHelpers"] == {
        "harbor.example.com": "flyte-private-registry",
        "ghcr.io": "flyte-private-registry",
        "https://index.docker.io/v1/": "flyte-private-registry",
    }
    assert stat.S_IMODE((config_dir / "config.json").stat().st_mode) == 0o644  # the user's mode is kept
    again = _run("configure-docker", "ghcr.io", "--docker-config", str(config_dir), "--json")
    assert json.loads(again.output)["unchanged"] == ["ghcr.io"]
    undo = _run(
        "configure-docker", "harbor.example.com", "ghcr.io", "docker.io", "--undo", "--docker-config", str(config_dir)
    )
    assert "restored ecr-login" in undo.output
    assert json.loads((config_dir / "config.json").read_text()) == {
        "credHelpers": {"harbor.example.com": "ecr-login"},
        "auths": {},
    }
    assert not (config_dir / "flyte-private-registry-routes.json").exists()


@pytest.mark.integration
def test_configured_route_lets_plain_docker_push(docker_engine, declared, tmp_path, busybox_image):
    """After configure-docker, the docker CLI itself runs our helper (standalone mode) for credentials."""
    config_dir = tmp_path / "dc"
    result = _run("configure-docker", declared, "--docker-config", str(config_dir))
    assert result.exit_code == 0, result.output
    image = f"{declared}/plain-docker:v1"
    env = {"DOCKER_CONFIG": str(config_dir), "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}
    docker_engine.docker("tag", busybox_image, image)
    pushed = docker_engine.docker("push", image, env=env)
    assert "digest: sha256:" in pushed.stdout


@pytest.mark.integration
def test_login_with_password_stdin_stores_like_docker(basic_registry, registry_users, tmp_path, canary_password):
    config_dir = tmp_path / "dc"
    result = _run(
        "login",
        basic_registry.host,
        "-u",
        "alice",
        "--password-stdin",
        "--docker-config",
        str(config_dir),
        input=registry_users.alice_password + "\n",
    )
    assert result.exit_code == 0, result.output
    assert canary_password not in result.output
    config_file = config_dir / "config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert basic_registry.host in json.loads(config_file.read_text())["auths"]
    assert _run("logout", basic_registry.host, "--docker-config", str(config_dir)).exit_code == 0
    assert json.loads(config_file.read_text())["auths"] == {}


@pytest.mark.integration
def test_login_wrong_password_stores_nothing(basic_registry, tmp_path, canary_password):
    config_dir = tmp_path / "dc"
    result = subprocess.run(
        [CLI, "login", basic_registry.host, "-u", "alice", "--password-stdin", "--docker-config", str(config_dir)],
        input="wrong-" + canary_password,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "refused user 'alice'" in " ".join(result.stderr.split())
    assert not (config_dir / "config.json").exists()
    assert canary_password not in result.stdout + result.stderr


@pytest.mark.integration
def test_login_into_a_creds_store(basic_registry, registry_users, tmp_path, monkeypatch):
    log = tmp_path / "helper.log"
    write_fake_helper(tmp_path / "bin", "desktop", {}, log=log)
    prepend_path(monkeypatch, tmp_path / "bin")
    config_dir = tmp_path / "dc"
    write_docker_config(config_dir, {"credsStore": "desktop"})
    result = _run(
        "login",
        basic_registry.host,
        "-u",
        "alice",
        "--password-stdin",
        "--docker-config",
        str(config_dir),
        input=registry_users.alice_password,
    )
    assert result.exit_code == 0, result.output
    assert "docker-credential-desktop" in result.output
    assert "auths" not in json.loads((config_dir / "config.json").read_text())


def test_no_password_option_in_argv():
    for command in ("login", "check", "configure-docker"):
        help_text = _run(command, "--help").output
        assert "--password " not in help_text and "--password=" not in help_text


def test_doctor_json_has_no_secrets(monkeypatch, canary_password):
    monkeypatch.setenv("H_TOKEN", canary_password)
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES",
        json.dumps([{"prefix": "harbor.example.com/ml", "username": "alice", "password_env": "H_TOKEN"}]),
    )
    result = subprocess.run([CLI, "doctor", "--json"], capture_output=True, text=True)
    findings = {f["check"]: f for f in json.loads(result.stdout)}
    assert findings["registry harbor.example.com/ml"]["ok"] is True
    assert "private-registry(100)" in findings["flytekit plugin"]["detail"]
    assert canary_password not in result.stdout + result.stderr


@pytest.mark.integration
def test_secret_render_then_preflight_from_the_rendered_file(
    declared, basic_registry, docker_engine, tmp_path, canary_password, busybox_image, registry_users
):
    from helpers import docker_push

    image = f"{declared}/preflight:v1"
    docker_push(docker_engine, busybox_image, image, "alice", registry_users.alice_password, tmp_path / "seed")
    output = tmp_path / "objects.yaml"
    rendered = _run(
        "secret",
        "render",
        declared,
        "--project",
        "flytesnacks",
        "--domain",
        "development",
        "--service-account",
        "default",
        "-o",
        str(output),
    )
    assert rendered.exit_code == 0, rendered.output
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert canary_password not in rendered.output
    assert "Secret flytesnacks-development/" in rendered.output
    assert "ServiceAccount flytesnacks-development/default" in rendered.output

    ok = _run("preflight", image, "--namespace", "flytesnacks-development", "--secrets-from", str(output), "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True
    missing = _run("preflight", image, "--namespace", "other-ns", "--secrets-from", str(output))
    assert missing.exit_code == 1
    tag_missing = _run(
        "preflight", f"{declared}/preflight:nope", "-n", "flytesnacks-development", "--secrets-from", str(output)
    )
    assert tag_missing.exit_code == 1


def test_secret_render_needs_an_explicit_destination(monkeypatch):
    monkeypatch.setenv("H_TOKEN", "x")
    result = _run("secret", "render", "harbor.example.com/ml", "--project", "p")
    assert result.exit_code == 2 and "--output FILE" in result.output


def test_secret_render_stdout_only_on_request(monkeypatch, canary_password):
    monkeypatch.setenv("H_TOKEN", canary_password)
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES",
        json.dumps(
            [
                {
                    "prefix": "harbor.example.com/ml",
                    "username": "alice",
                    "password_env": "H_TOKEN",
                    "pull_secret": "harbor-pull",
                }
            ]
        ),
    )
    result = _run("secret", "render", "--project", "flytesnacks", "--domain", "development", "--stdout", "--no-verify")
    assert result.exit_code == 0, result.output
    import yaml

    documents = list(yaml.safe_load_all(result.output))
    assert [d["kind"] for d in documents] == ["Secret"]
    assert documents[0]["metadata"]["name"] == "harbor-pull"
    assert documents[0]["type"] == "kubernetes.io/dockerconfigjson"


@pytest.mark.integration
def test_login_without_user_routes_declared_credentials_and_logout_removes_the_route(declared, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    refused = _run("login", declared, "--docker-config", str(tmp_path / "dc"))
    assert refused.exit_code == 2 and "is not on PATH" in refused.output
    prepend_path(monkeypatch, Path(sys.executable).parent)
    config_dir = tmp_path / "dc"
    result = _run("login", declared, "--docker-config", str(config_dir))
    assert result.exit_code == 0, result.output
    assert "env REG_USER/REG_PASSWORD" in result.output
    host = declared.split("/")[0]
    assert json.loads((config_dir / "config.json").read_text())["credHelpers"] == {host: "flyte-private-registry"}
    removed = _run("logout", declared, "--docker-config", str(config_dir))
    assert "removed the flyte-private-registry route" in removed.output
    assert "credHelpers" not in json.loads((config_dir / "config.json").read_text())


@pytest.mark.integration
def test_login_without_user_leaves_docker_own_credentials_alone(basic_registry, registry_users, tmp_path, monkeypatch):
    config_dir = tmp_path / "dc"
    auth = __import__("base64").b64encode(f"alice:{registry_users.alice_password}".encode()).decode()
    write_docker_config(config_dir, {"auths": {basic_registry.host: {"auth": auth}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    before = (config_dir / "config.json").read_text()
    result = _run("login", basic_registry.host, "--docker-config", str(config_dir))
    assert result.exit_code == 0, result.output
    assert "no route needed" in result.output
    assert (config_dir / "config.json").read_text() == before


def test_module_option_loads_declarations_from_workflow_code(tmp_path, monkeypatch, canary_password):
    monkeypatch.setenv("HARBOR_USER", "alice")
    monkeypatch.setenv("HARBOR_TOKEN", canary_password)
    workflow = tmp_path / "wf.py"
    workflow.write_text(
        "from flyte_private_registry import PrivateRegistry\n"
        "harbor = PrivateRegistry('harbor.example.com/ml', username_env='HARBOR_USER', password_env='HARBOR_TOKEN',"
        " pull_secret='harbor-pull')\n"
    )
    undeclared = _run("secret", "render", "harbor.example.com/ml", "--project", "p", "--stdout")
    assert undeclared.exit_code == 2 and "lies under no declared registry" in undeclared.output
    rendered = _run(
        "-m", str(workflow), "secret", "render", "harbor.example.com/ml", "-p", "p", "-d", "dev", "--stdout",
        "--no-verify",
    )  # fmt: skip
    assert rendered.exit_code == 0, rendered.output
    import yaml

    (secret,) = yaml.safe_load_all(rendered.output)
    assert secret["metadata"]["name"] == "harbor-pull" and secret["metadata"]["namespace"] == "p-dev"
    explained = _run("-m", str(workflow), "explain", "harbor.example.com/ml/trainer:v1")
    assert "env HARBOR_USER/HARBOR_TOKEN" in explained.output and canary_password not in explained.output
    broken = _run("-m", str(tmp_path / "missing.py"), "explain", "harbor.example.com")
    assert broken.exit_code == 2 and "cannot import" in broken.output


def test_preflight_refuses_images_under_no_declared_registry():
    result = _run("preflight", "harbor.example.com/ml/trainer:v1", "--namespace", "p-dev")
    assert result.exit_code == 2 and "lies under no declared registry" in result.output


def test_explain_pull_prefers_the_read_only_credential(monkeypatch, canary_password):
    monkeypatch.setenv("H_TOKEN", canary_password)
    monkeypatch.setenv("H_READ_TOKEN", "read-only-" + canary_password)
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES",
        json.dumps(
            [
                {
                    "prefix": "harbor.example.com/ml",
                    "username": "ci",
                    "password_env": "H_TOKEN",
                    "pull_username": "reader",
                    "pull_password_env": "H_READ_TOKEN",
                }
            ]
        ),
    )
    push = json.loads(_run("explain", "harbor.example.com/ml", "--json").output)
    pull = json.loads(_run("explain", "harbor.example.com/ml", "--pull", "--json").output)
    assert (push["for"], push["username"]) == ("push", "ci")
    assert (pull["for"], pull["username"]) == ("pull secret", "reader")
    text = _run("explain", "harbor.example.com/ml", "--pull").output
    assert "for the pull secret" in text and canary_password not in text


def test_file_errors_are_one_line_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("H_TOKEN", "x")
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES",
        json.dumps([{"prefix": "harbor.example.com/ml", "username": "u", "password_env": "H_TOKEN"}]),
    )
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "elsewhere")
    result = subprocess.run(
        [CLI, "secret", "render", "-p", "p", "--no-verify", "-o", str(tmp_path / "link.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "link.yaml" in result.stderr
    assert (tmp_path / "elsewhere").read_text() == ""  # the symlink target was not written
    (tmp_path / "bad.yaml").write_text("a: [unclosed\n")
    bad = _run("preflight", "harbor.example.com/ml/x:v1", "-n", "p-dev", "--secrets-from", str(tmp_path / "bad.yaml"))
    assert bad.exit_code == 2 and "is not YAML" in bad.output


def test_unreachable_cluster_is_exit_3_not_a_traceback(monkeypatch, tmp_path):
    from rig import free_port

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{free_port()}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    env = {
        **__import__("os").environ,
        "KUBECONFIG": str(kubeconfig),
        "H_TOKEN": "x",
        "FLYTE_PRIVATE_REGISTRIES": json.dumps(
            [{"prefix": "harbor.example.com/ml", "username": "u", "password_env": "H_TOKEN"}]
        ),
    }
    applied = subprocess.run(
        [CLI, "secret", "apply", "-p", "p", "-d", "dev", "--no-verify"], env=env, capture_output=True, text=True
    )
    assert applied.returncode == 3 and "the API server did not answer" in applied.stderr
    assert "Traceback" not in applied.stderr
    checked = subprocess.run(
        [CLI, "preflight", "harbor.example.com/ml/app:v1", "-n", "p-dev"], env=env, capture_output=True, text=True
    )
    assert checked.returncode == 3 and "Traceback" not in checked.stderr
