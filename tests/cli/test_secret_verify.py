"""``secret render`` / ``secret apply`` prove the credential before writing it anywhere (issue 9 item 5).

Real parts: the htpasswd registry and the token (Bearer) registry of the test rig answer the
logins; ``secret apply`` goes through the real ``kubernetes`` client to the Kubernetes API
stand-in (tests/kube_stand_in.py: an HTTP server, not a cluster; no cluster can run here).
"""

from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner
from kube_stand_in import stand_in_api

from flyte_private_registry.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def declare(basic_registry, monkeypatch):
    """Declare the htpasswd registry for alice with the password given (env REG_PASSWORD)."""

    def declare(password: str, prefix: str | None = None) -> str:
        prefix = prefix or f"{basic_registry.host}/team"
        monkeypatch.setenv("REG_USER", "alice")
        monkeypatch.setenv("REG_PASSWORD", password)
        monkeypatch.setenv(
            "FLYTE_PRIVATE_REGISTRIES",
            json.dumps(
                [
                    {
                        "prefix": prefix,
                        "username_env": "REG_USER",
                        "password_env": "REG_PASSWORD",
                        "pull_secret": "team-pull",
                    }
                ]
            ),
        )
        return prefix

    return declare


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """A kubeconfig whose current context is the stand-in API server (namespace p-dev exists)."""
    with stand_in_api({"p-dev"}) as api:
        path = tmp_path / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: c, cluster: {{server: '{api.url}'}}}}]\n"
            "users: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
        )
        monkeypatch.setenv("KUBECONFIG", str(path))
        # the kubernetes package reads $KUBECONFIG once, at import: point this process's copy here too
        monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield api


@pytest.mark.integration
def test_render_refuses_a_password_the_registry_rejects_and_writes_nothing(declare, tmp_path, canary_password):
    declare("wrong-" + canary_password)
    output = tmp_path / "objects.yaml"
    to_file = _run("secret", "render", "-p", "p", "-d", "dev", "-o", str(output))
    assert to_file.exit_code == 1, to_file.output
    assert "refused user 'alice'" in to_file.output and "--no-verify" in to_file.output
    assert "not storing the credential for" in to_file.output and "Secret team-pull" in to_file.output
    assert not output.exists() and os.listdir(tmp_path) == []
    assert "Traceback" not in to_file.output and canary_password not in to_file.output

    to_stdout = _run("secret", "render", "-p", "p", "-d", "dev", "--stdout")
    assert to_stdout.exit_code == 1
    assert "apiVersion" not in to_stdout.stdout and "dockerconfigjson" not in to_stdout.output
    assert canary_password not in to_stdout.output


@pytest.mark.integration
def test_no_verify_renders_without_asking_the_registry(declare, basic_registry, canary_password):
    declare("wrong-" + canary_password)
    result = _run("secret", "render", "-p", "p", "-d", "dev", "--stdout", "--no-verify")
    assert result.exit_code == 0, result.output
    (secret,) = yaml.safe_load_all(result.stdout)
    assert secret["metadata"]["name"] == "team-pull"
    assert canary_password not in result.output  # only base64 inside the JSON inside base64


@pytest.mark.integration
def test_render_with_the_right_password_logs_in_then_writes(declare, tmp_path, canary_password):
    declare(canary_password)
    output = tmp_path / "objects.yaml"
    result = _run("secret", "render", "-p", "p", "-d", "dev", "-o", str(output))
    assert result.exit_code == 0, result.output
    assert "verifying the credential for Secret team-pull" in result.output
    assert output.exists() and canary_password not in result.output


@pytest.mark.integration
def test_apply_refuses_a_rejected_password_before_touching_the_cluster(declare, kubeconfig, canary_password):
    declare("wrong-" + canary_password)
    refused = _run("secret", "apply", "-p", "p", "-d", "dev")
    assert refused.exit_code == 1 and "refused user 'alice'" in refused.output
    assert kubeconfig.requests == [] and canary_password not in refused.output

    declare(canary_password)
    applied = _run("secret", "apply", "-p", "p", "-d", "dev")
    assert applied.exit_code == 0, applied.output
    assert "Secret p-dev/team-pull: created" in applied.output
    assert kubeconfig.get("p-dev", "secrets", "team-pull") is not None


@pytest.mark.integration
def test_apply_refuses_a_foreign_secret_unless_adopt(declare, kubeconfig, canary_password):
    import base64

    other = {"auths": {"quay.io": {"auth": base64.b64encode(b"ci:quay-pw").decode()}}}
    kubeconfig.put(
        "p-dev",
        "secrets",
        {
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "team-pull", "labels": {"team": "platform"}},
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(other).encode()).decode()},
        },
    )
    before = kubeconfig.get("p-dev", "secrets", "team-pull")
    declare(canary_password)
    refused = _run("secret", "apply", "-p", "p", "-d", "dev")
    assert refused.exit_code == 3, refused.output
    assert "Secret p-dev/team-pull exists and was not created by flyte-private-registry" in refused.output
    assert "--adopt" in refused.output and "Traceback" not in refused.output
    assert kubeconfig.get("p-dev", "secrets", "team-pull") == before

    adopted = _run("secret", "apply", "-p", "p", "-d", "dev", "--adopt")
    assert adopted.exit_code == 0, adopted.output
    auths = json.loads(base64.b64decode(kubeconfig.get("p-dev", "secrets", "team-pull")["data"][".dockerconfigjson"]))
    assert len(auths["auths"]) == 2  # theirs and ours
    assert auths["auths"]["quay.io"] == other["auths"]["quay.io"]
    assert canary_password not in adopted.output


def test_unreachable_registry_is_exit_3_unless_no_verify(declare, tmp_path):
    from rig import free_port

    declare("any-password", prefix=f"127.0.0.1:{free_port()}/team")
    output = tmp_path / "objects.yaml"
    result = _run("secret", "render", "-p", "p", "-d", "dev", "-o", str(output))
    assert result.exit_code == 3, result.output
    assert "cannot reach registry" in result.output or "did not answer" in result.output
    assert "--no-verify" in result.output and not output.exists()
    skipped = _run("secret", "render", "-p", "p", "-d", "dev", "-o", str(output), "--no-verify")
    assert skipped.exit_code == 0, skipped.output
    assert output.exists()


@pytest.mark.integration
def test_verification_asks_for_pull_only(token_registry, ca, registry_users, monkeypatch, tmp_path):
    """The token server's ``reader`` may only pull: render must accept it (it never asks for push)."""
    monkeypatch.setenv("READ_TOKEN", registry_users.reader_password)
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES",
        json.dumps(
            [
                {
                    "prefix": f"{token_registry.host}/team",
                    "pull_username": "reader",
                    "pull_password_env": "READ_TOKEN",
                    "ca_file": str(ca.ca_file),
                }
            ]
        ),
    )
    ok = _run("secret", "render", "-p", "p", "-d", "dev", "-o", str(tmp_path / "ok.yaml"))
    assert ok.exit_code == 0, ok.output
    monkeypatch.setenv("READ_TOKEN", "wrong-" + registry_users.reader_password)
    refused = _run("secret", "render", "-p", "p", "-d", "dev", "-o", str(tmp_path / "no.yaml"))
    assert refused.exit_code == 1, refused.output
    assert not (tmp_path / "no.yaml").exists()
    assert registry_users.reader_password not in refused.output


def test_secret_apply_help_names_adopt_and_no_verify():
    text = _run("secret", "apply", "--help").output
    assert "--adopt" in text and "--no-verify" in text
