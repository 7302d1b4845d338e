"""Google Artifact Registry: prefixes, access tokens from env / google-auth / gcloud, and a push.

google-auth runs unchanged: Application Default Credentials load a service-account key file
whose ``token_uri`` points at a small OAuth endpoint here, which checks the signed JWT assertion
(RS256, audience, scope) and answers an access token. The push goes to a rig registry answering
as ``us-central1-docker.pkg.dev`` (127.0.0.56:443 via /etc/hosts) that accepts that token for
user ``oauth2accesstoken``. Not exercised: Google's IAM, and workload identity federation.
"""

from __future__ import annotations

import http.server
import json
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flytekit.image_spec.image_spec import ImageBuildEngine
from helpers import prepend_path
from provider_rig import build_env, image_spec, serve_as, split_image  # noqa: F401 (build_env: a fixture)

from flyte_private_registry import PrivateRegistry
from flyte_private_registry._reference import docker_config_key
from flyte_private_registry.providers import GarProvider, provider_for_host
from flyte_private_registry.providers._gar import CLOUD_PLATFORM_SCOPE, INSTALL_HINT, clear_token_cache

GAR_HOST = "us-central1-docker.pkg.dev"
#: google-auth signs service-account assertions for Google's token endpoint, whatever token_uri says.
GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token"


@dataclass
class GoogleOAuth:
    """A token endpoint for one service account, and the key file that names it."""

    token_uri: str
    key_file: Path
    access_token: str
    public_key: rsa.RSAPublicKey
    grants: list[dict] = field(default_factory=list)


@pytest.fixture(scope="module")
def google_oauth(rig_dir: Path, canary_password: str) -> Iterator[GoogleOAuth]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OAuthHandler)
    token_uri = f"http://127.0.0.1:{server.server_address[1]}/token"
    key_file = rig_dir / "gar-service-account.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "my-project",
                "private_key_id": "fpr-test-key",
                "private_key": key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).decode(),
                "client_email": "builder@my-project.iam.gserviceaccount.com",
                "client_id": "100000000000000000001",
                "token_uri": token_uri,
            }
        )
    )
    key_file.chmod(0o600)
    oauth = GoogleOAuth(token_uri, key_file, f"ya29.fpr-{canary_password}", key.public_key())
    server.oauth = oauth  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield oauth
    server.shutdown()
    server.server_close()


class _OAuthHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        oauth: GoogleOAuth = self.server.oauth  # type: ignore[attr-defined]
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        try:
            assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
            claims = jwt.decode(form["assertion"][0], oauth.public_key, algorithms=["RS256"], audience=GOOGLE_TOKEN_AUD)
        except (AssertionError, KeyError, jwt.PyJWTError):
            self._answer(400, {"error": "invalid_grant"})
            return
        oauth.grants.append(claims)
        self._answer(200, {"access_token": oauth.access_token, "expires_in": 3600, "token_type": "Bearer"})

    def _answer(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def no_google_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ADC, no gcloud login: each test adds the one source it is about."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("GOOGLE_OAUTH_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud-config"))
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # read by google-auth at import: for the subprocesses below
    clear_token_cache()
    yield
    clear_token_cache()


def fake_gcloud(bin_dir: Path, *, token: str | None, error: str = "") -> None:
    """A real ``gcloud`` executable on PATH that prints a token, or fails like a logged-out gcloud."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    body = f"print({token!r})" if token else f"import sys; sys.stderr.write({error!r} + '\\n'); sys.exit(1)"
    path = bin_dir / "gcloud"
    path.write_text(f"#!{sys.executable}\nimport sys\nassert sys.argv[1:] == ['auth', 'print-access-token']\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("args", "registry"),
    [
        (("us-central1", "my-project", "ml-images"), "us-central1-docker.pkg.dev/my-project/ml-images"),
        (("EUROPE", "My-Project", "Repo"), "europe-docker.pkg.dev/my-project/repo"),
        (("europe-west4", "example.com:my-project", "repo"), "europe-west4-docker.pkg.dev/example.com/my-project/repo"),
        (("northamerica-northeast1", "proj-123456", "r"), "northamerica-northeast1-docker.pkg.dev/proj-123456/r"),
    ],
)
def test_prefix_forms(args, registry):
    reg = PrivateRegistry.gar(*args, pull_secret="gar-pull")
    assert reg.registry == registry and isinstance(reg.provider, GarProvider)
    assert docker_config_key(reg.host) == reg.host


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("us central1", "my-project", "repo"), "is not an Artifact Registry location"),
        (("us-central1", "My Project", "repo"), "is not a Google Cloud project id"),
        (("us-central1", "123456789012", "repo"), "is not a Google Cloud project id"),
        (("us-central1", "my-project", "1repo"), "is not an Artifact Registry repository id"),
    ],
)
def test_bad_prefixes(args, needle):
    with pytest.raises(ValueError, match=needle):
        PrivateRegistry.gar(*args)


@pytest.mark.parametrize("host", ["us-central1-docker.pkg.dev", "europe-docker.pkg.dev", "gcr.io", "eu.gcr.io"])
def test_hosts_are_recognised(host):
    assert isinstance(provider_for_host(host), GarProvider)
    assert GarProvider.short_lived


def test_access_token_from_env(monkeypatch):
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.from-env")
    credential = PrivateRegistry.gar("us-central1", "my-project", "repo").resolve().require()
    assert (credential.username, credential.password.get_secret_value()) == ("oauth2accesstoken", "ya29.from-env")


def test_application_default_credentials_through_google_auth(google_oauth, monkeypatch, canary_password):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(google_oauth.key_file))
    reg = PrivateRegistry.gar("us-central1", "my-project", "repo")
    before = len(google_oauth.grants)
    credential = reg.resolve().require()
    assert credential.username == "oauth2accesstoken"
    assert credential.password.get_secret_value() == google_oauth.access_token
    assert "Application Default Credentials" in credential.source and "service_account" in credential.source
    assert timedelta(minutes=50) < credential.expires_at - datetime.now(timezone.utc) <= timedelta(hours=1)
    (grant,) = google_oauth.grants[before:]
    assert grant["iss"] == "builder@my-project.iam.gserviceaccount.com" and grant["scope"] == CLOUD_PLATFORM_SCOPE
    reg.resolve()
    reg.resolve()
    assert len(google_oauth.grants) == before + 1  # the token is reused until it expires
    assert canary_password not in reg.explain()


def test_gcloud_is_the_last_resort(tmp_path, monkeypatch):
    reg = PrivateRegistry.gar("us-central1", "my-project", "repo")
    logged_out = "ERROR: (gcloud.auth.print-access-token) You do not currently have an active account selected."
    fake_gcloud(tmp_path / "bin", token=None, error=logged_out)
    prepend_path(monkeypatch, tmp_path / "bin")
    text = reg.explain()
    assert "gcloud failed: ERROR: (gcloud.auth.print-access-token) You do not currently have an active account" in text

    fake_gcloud(tmp_path / "bin", token="ya29.from-gcloud")
    credential = reg.resolve().require()
    assert credential.source == "gcloud auth print-access-token"
    assert credential.password.get_secret_value() == "ya29.from-gcloud"


def test_no_application_default_credentials_is_explained():
    script = """
from flyte_private_registry import PrivateRegistry
print(PrivateRegistry.gar("us-central1", "my-project", "repo").explain())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no Application Default Credentials (set GOOGLE_APPLICATION_CREDENTIALS" in done.stdout


def test_without_google_auth_the_miss_names_the_extra():
    script = """
import sys
sys.modules["google.auth"] = None
from flyte_private_registry import PrivateRegistry
print(PrivateRegistry.gar("us-central1", "my-project", "repo").explain())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert INSTALL_HINT in done.stdout


def test_refusal_hints():
    provider = GarProvider()
    assert "roles/artifactregistry.writer" in provider.refusal_hint("push", 403)
    assert "repositories create" in provider.refusal_hint("push", 403)
    assert "oauth2accesstoken" in provider.refusal_hint("log in", 401)


# ------------------------------------------------------------------------------ against "us-central1-docker.pkg.dev"
@pytest.fixture(scope="module")
def gar(rig_dir, docker_engine, ca, google_oauth):
    users = {"oauth2accesstoken": google_oauth.access_token}
    with serve_as(rig_dir, docker_engine, ca, hostname=GAR_HOST, ip="127.0.0.56", users=users) as stand_in:
        yield stand_in


@pytest.mark.usefixtures("build_env")
def test_imagespec_build_pushes_with_application_default_credentials(
    gar, google_oauth, ca, monkeypatch, capfd, canary_password
):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(google_oauth.key_file))
    reg = PrivateRegistry.gar("us-central1", "my-project", "ml-images", ca_file=ca.ca_file)
    spec = image_spec(reg.registry)
    ImageBuildEngine.build(spec)
    out = capfd.readouterr()

    repository, tag = split_image(spec.image_name())
    assert repository.startswith("my-project/ml-images/app-")
    assert tag in gar.stored_tags(repository)
    assert "Verified" in out.out
    for text in (out.out, out.err, gar.logs(), reg.explain()):
        assert canary_password not in text
