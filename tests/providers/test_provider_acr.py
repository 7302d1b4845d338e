"""Azure Container Registry: names and login servers, the token user, env and ``az`` sources, and a push.

The ``az`` CLI is stood in by a real executable on PATH that answers ``az acr login --name N
--expose-token --output json`` the way the Azure CLI does (a JWT-shaped registry token). The push
goes to a rig registry answering as ``fprregistry.azurecr.io`` (127.0.0.57:443 via /etc/hosts)
with Bearer tokens, as ACR does, for the null-GUID user. Not exercised: Entra ID and ACR's own
token exchange, which ``az`` performs.
"""

from __future__ import annotations

import base64
import json
import stat
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine
from helpers import prepend_path
from provider_rig import build_env, image_spec, serve_as, split_image  # noqa: F401 (build_env: a fixture)

from flyte_private_registry import PrivateRegistry
from flyte_private_registry._reference import docker_config_key
from flyte_private_registry.providers import AcrProvider, provider_for_host
from flyte_private_registry.providers._acr import ACR_TOKEN_USER

ACR_HOST = "fprregistry.azurecr.io"
ACR_VARS = ("ACR_USERNAME", "ACR_PASSWORD", "ACR_TOKEN", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")


def acr_token(secret: str, expires_at: datetime) -> str:
    """A JWT-shaped ACR refresh token (what ``az acr login --expose-token`` prints), unsigned here."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    signature = base64.urlsafe_b64encode(secret.encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'exp': int(expires_at.timestamp()), 'grant_type': 'refresh_token'})}.{signature}"  # noqa: E501


def fake_az(bin_dir: Path, log: Path, *, token: str | None, error: str = "") -> None:
    """A real ``az`` on PATH: logs its argv, prints the token JSON, or fails like a logged-out CLI."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    answer = (
        f"print(json.dumps({{'accessToken': {token!r}, 'loginServer': sys.argv[4] + '.azurecr.io'}}))"
        if token
        else f"sys.stderr.write({error!r} + '\\n'); sys.exit(1)"
    )
    path = bin_dir / "az"
    path.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "sys.stderr.write('WARNING: You can perform manual login using the provided access token below\\n')\n"
        f"{answer}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ACR_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("name", "registry"),
    [
        ("fprregistry", "fprregistry.azurecr.io"),
        ("MyRegistry", "myregistry.azurecr.io"),
        ("myregistry.azurecr.cn", "myregistry.azurecr.cn"),
        ("myregistry.azurecr.us/team", "myregistry.azurecr.us/team"),
        ("myregistry-abcdef1234.azurecr.io", "myregistry-abcdef1234.azurecr.io"),
    ],
)
def test_names_and_login_servers(name, registry):
    reg = PrivateRegistry.acr(name, pull_secret="acr-pull")
    assert reg.registry == registry and isinstance(reg.provider, AcrProvider)
    assert docker_config_key(reg.host) == reg.host.split("/")[0]
    assert isinstance(provider_for_host(reg.host), AcrProvider)


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("abc", "5-50 letters and digits"),
        ("my-registry", "5-50 letters and digits"),
        ("myregistry.example.com", "is not an ACR login server"),
        ("", "needs the registry name"),
    ],
)
def test_bad_names(name, needle):
    with pytest.raises(ValueError, match=needle):
        PrivateRegistry.acr(name)


@pytest.mark.parametrize(
    ("env", "user", "source"),
    [
        ({"ACR_USERNAME": "pull-token", "ACR_PASSWORD": "p"}, "pull-token", "env ACR_PASSWORD (ACR_USERNAME)"),
        ({"ACR_TOKEN": "t"}, ACR_TOKEN_USER, f"env ACR_TOKEN (user {ACR_TOKEN_USER})"),
        ({"AZURE_CLIENT_ID": "app-id", "AZURE_CLIENT_SECRET": "s"}, "app-id", "service principal"),
    ],
)
def test_credentials_from_env(monkeypatch, env, user, source):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    credential = PrivateRegistry.acr("fprregistry").resolve().require()
    assert credential.username == user and source in credential.source


def test_env_token_expiry_is_read_from_the_token(monkeypatch):
    expires = datetime(2030, 1, 1, tzinfo=timezone.utc)
    monkeypatch.setenv("ACR_TOKEN", acr_token("x", expires))
    assert PrivateRegistry.acr("fprregistry").resolve().require().expires_at == expires
    assert AcrProvider.short_lived


def test_az_cli_is_asked_for_a_registry_token(tmp_path, monkeypatch, canary_password):
    log = tmp_path / "az.log"
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=3)
    fake_az(tmp_path / "bin", log, token=acr_token(canary_password, expires))
    prepend_path(monkeypatch, tmp_path / "bin")
    reg = PrivateRegistry.acr("FprRegistry")
    credential = reg.resolve().require()
    assert credential.username == ACR_TOKEN_USER and credential.expires_at == expires
    assert credential.source == f"az acr login --expose-token (user {ACR_TOKEN_USER})"
    assert log.read_text().split("\n")[0] == "acr login --name fprregistry --expose-token --output json"
    assert canary_password not in reg.explain() + repr(credential)


def test_az_failure_and_absence_are_explained(tmp_path, monkeypatch):
    reg = PrivateRegistry.acr("fprregistry")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "az (the Azure CLI) is not on PATH" in reg.explain()
    fake_az(tmp_path / "bin", tmp_path / "az.log", token=None, error="ERROR: Please run 'az login' to setup account.")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert "az failed: ERROR: Please run 'az login' to setup account." in reg.explain()


def test_refusal_hints():
    provider = AcrProvider()
    assert "AcrPush" in provider.refusal_hint("push", 403)
    assert ACR_TOKEN_USER in provider.refusal_hint("log in", 401)


# ------------------------------------------------------------------------------------ against "fprregistry.azurecr.io"
@pytest.fixture(scope="module")
def acr(rig_dir, docker_engine, ca, canary_password):
    token = acr_token(canary_password, datetime.now(timezone.utc) + timedelta(hours=3))
    users = {ACR_TOKEN_USER: token}
    with serve_as(rig_dir, docker_engine, ca, hostname=ACR_HOST, ip="127.0.0.57", users=users) as stand_in:
        yield stand_in, token


@pytest.mark.usefixtures("build_env")
def test_imagespec_build_pushes_with_an_az_token(acr, ca, tmp_path, monkeypatch, capfd, canary_password):
    stand_in, token = acr
    fake_az(tmp_path / "bin", tmp_path / "az.log", token=token)
    prepend_path(monkeypatch, tmp_path / "bin")
    reg = PrivateRegistry.acr("fprregistry", ca_file=ca.ca_file)
    spec = image_spec(reg.registry)
    start = len(stand_in.token_server.requests)
    ImageBuildEngine.build(spec)
    out = capfd.readouterr()

    repository, tag = split_image(spec.image_name())
    assert tag in stand_in.stored_tags(repository)
    assert {r.user for r in stand_in.token_server.requests[start:] if r.status == 200} == {ACR_TOKEN_USER}
    assert "Verified" in out.out
    for text in (out.out, out.err, stand_in.logs(), reg.explain()):
        assert canary_password not in text and token not in text
