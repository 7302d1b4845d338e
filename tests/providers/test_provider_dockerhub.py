"""Docker Hub: namespaces, ``library/``, DOCKERHUB_USERNAME/DOCKERHUB_TOKEN, and a real push to "docker.io".

dockerd treats Docker Hub specially: it always talks TLS to ``registry-1.docker.io`` and verifies
the certificate against the system roots, whatever IP the name resolves to. So this module
starts its own dockerd whose Go runtime trusts the rig CA (``SSL_CERT_FILE`` = system bundle +
rig CA), maps ``registry-1.docker.io`` and ``auth.docker.io`` to loopback addresses on port 443,
and serves a token-auth registry and token server there (service ``registry.docker.io``).

Exercised for real: the image name ``docker.io/<namespace>/<name>``, the docker CLI looking up
our helper under the config key ``https://index.docker.io/v1/`` (a wrong key means an anonymous
push, refused), dockerd's Docker Hub endpoint and its verified TLS, the Bearer challenge to
``auth.docker.io``, and our client's mapping of ``docker.io`` to the API host. Not exercised:
Docker Hub's own servers (account rules, rate limits, repository visibility, access-token scopes).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
from provider_rig import image_spec, serve_as, split_image, wait_until_daemon_resolves
from rig import DockerEngine, UserSpec

from flyte_private_registry import AuthorizationError, ConfigurationError, PrivateRegistry
from flyte_private_registry._reference import DOCKER_HUB_CONFIG_KEY, docker_config_key
from flyte_private_registry.providers import DockerHubProvider, provider_for_host

#: What Docker Hub's registry says in its challenge, reproduced by the stand-in.
HUB_API_HOST = "registry-1.docker.io"
HUB_TOKEN_HOST = "auth.docker.io"
HUB_SERVICE = "registry.docker.io"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKERHUB_USERNAME", raising=False)
    monkeypatch.delenv("DOCKERHUB_TOKEN", raising=False)


@pytest.mark.parametrize(
    ("namespace", "registry"),
    [
        ("acme", "docker.io/acme"),
        ("Acme", "docker.io/acme"),
        ("docker.io/acme", "docker.io/acme"),
        ("acme42", "docker.io/acme42"),
    ],
)
def test_namespace_forms(namespace, registry):
    reg = PrivateRegistry.dockerhub(namespace, pull_secret="hub-pull")
    assert reg.registry == registry and isinstance(reg.provider, DockerHubProvider)
    assert docker_config_key(reg.host) == DOCKER_HUB_CONFIG_KEY == "https://index.docker.io/v1/"


@pytest.mark.parametrize(
    ("namespace", "needle"),
    [
        ("library", "official images"),
        ("acme/app", "one level deep"),
        ("", "needs your Docker ID"),
        ("acme corp", "is not a Docker Hub namespace"),
    ],
)
def test_bad_namespaces(namespace, needle):
    with pytest.raises(ValueError, match=needle):
        PrivateRegistry.dockerhub(namespace)


@pytest.mark.parametrize("host", ["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"])
def test_every_docker_hub_alias_is_docker_hub(host):
    assert isinstance(provider_for_host(host), DockerHubProvider)


def test_credentials_from_env_then_docker_login(monkeypatch, user_docker_config: Path, canary_password):
    auth = base64.b64encode(b"loggedin:pw").decode()
    (user_docker_config / "config.json").write_text(json.dumps({"auths": {DOCKER_HUB_CONFIG_KEY: {"auth": auth}}}))
    reg = PrivateRegistry.dockerhub("acme")
    assert reg.resolve().require().username == "loggedin"
    monkeypatch.setenv("DOCKERHUB_TOKEN", canary_password)
    assert "DOCKERHUB_TOKEN is set but DOCKERHUB_USERNAME is not" in reg.explain()
    monkeypatch.setenv("DOCKERHUB_USERNAME", "acmebot")
    credential = reg.resolve().require()
    assert credential.username == "acmebot" and credential.source == "env DOCKERHUB_TOKEN (DOCKERHUB_USERNAME)"
    assert reg.resolve_pull().require().username == "acmebot"  # a PAT may be a pull secret
    assert canary_password not in reg.explain()


def test_refusal_hints():
    provider = DockerHubProvider()
    assert "Read & Write" in provider.refusal_hint("push", 403) and "library/" in provider.refusal_hint("push", 403)
    assert "not your email address" in provider.refusal_hint("log in", 401)


# ------------------------------------------------------------------------------------ against "docker.io"
@pytest.fixture(scope="module")
def hub_engine(rig_dir: Path, ca) -> DockerEngine:
    """A dockerd whose TLS trust store (Go's SSL_CERT_FILE) holds the system roots plus the rig CA."""
    bundle = rig_dir / "hub-trust.pem"
    system = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    bundle.write_bytes((system.read_bytes() if system.is_file() else b"") + ca.ca_pem)
    empty = rig_dir / "hub-no-cert-dir"
    empty.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(bundle))
        patch.setenv("SSL_CERT_DIR", str(empty))
        engine = DockerEngine.start(rig_dir / "hub-docker")
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def hub(rig_dir, hub_engine, ca, canary_password):
    users = {"acmebot": UserSpec(canary_password, ("pull", "push"))}
    with serve_as(
        rig_dir,
        hub_engine,
        ca,
        hostname=HUB_API_HOST,
        ip="127.0.0.54",
        users=users,
        service=HUB_SERVICE,
        token_hostname=HUB_TOKEN_HOST,
        token_ip="127.0.0.55",
        token_port=443,
    ) as stand_in:
        assert stand_in.token_server.realm == f"https://{HUB_TOKEN_HOST}/token"
        yield stand_in


@pytest.fixture
def hub_build_env(hub_engine: DockerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_HOST", hub_engine.host)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    (tmp_path / "payload.txt").write_text(f"payload {uuid.uuid4()}\n")
    monkeypatch.chdir(tmp_path)
    ImageBuildEngine.build.cache_clear()
    yield tmp_path
    ImageBuildEngine.build.cache_clear()


@pytest.mark.usefixtures("hub_build_env")
def test_imagespec_build_pushes_to_docker_hub(hub, ca, monkeypatch, capfd, canary_password):
    monkeypatch.setenv("DOCKERHUB_USERNAME", "acmebot")
    monkeypatch.setenv("DOCKERHUB_TOKEN", canary_password)
    reg = PrivateRegistry.dockerhub("acme", ca_file=ca.ca_file)
    spec = image_spec(reg.registry)
    start = len(hub.token_server.requests)
    ImageBuildEngine.build(spec)
    out = capfd.readouterr()

    assert spec.image_name().startswith("docker.io/acme/app-")
    repository, tag = split_image(spec.image_name())
    assert tag in hub.stored_tags(repository)
    pushes = [r for r in hub.token_server.requests[start:] if "push" in " ".join(r.granted_scopes)]
    # dockerd asked auth.docker.io for service registry.docker.io as acmebot: it found our helper
    # under https://index.docker.io/v1/ in the temporary docker config
    assert pushes and {(r.user, r.service) for r in pushes} == {("acmebot", HUB_SERVICE)}
    assert "Verified" in out.out
    for text in (out.out, out.err, hub.logs(), reg.explain()):
        assert canary_password not in text


def test_dockerd_really_verifies_docker_hub_tls(hub, docker_engine: DockerEngine, busybox_image: str):
    """The session dockerd does not trust the rig CA: the same push fails on the certificate."""
    wait_until_daemon_resolves(docker_engine, "docker.io")  # it may not have re-read /etc/hosts yet
    reference = f"docker.io/acme/tls-probe:{uuid.uuid4().hex[:6]}"
    docker_engine.docker("tag", busybox_image, reference)
    refused = docker_engine.docker("push", reference, check=False)
    assert refused.returncode != 0 and "certificate" in refused.stderr, refused.stderr


@pytest.mark.usefixtures("hub_build_env")
def test_one_part_names_land_in_library_and_are_refused_before_building(hub, ca, capfd, canary_password):
    reg = PrivateRegistry("docker.io", username="acmebot", password=canary_password, ca_file=ca.ca_file)
    assert isinstance(reg.provider, DockerHubProvider)
    spec = ImageSpec(name=f"app-{uuid.uuid4().hex[:6]}", registry=reg.registry, copy=["payload.txt"])
    with pytest.raises(ConfigurationError, match=r"official 'library/' namespace"):
        ImageBuildEngine.build(spec)
    out = capfd.readouterr()
    assert "docker build" not in out.out + out.err


def test_token_limited_to_another_namespace_is_refused_with_the_hub_hint(hub, ca, monkeypatch):
    hub.token_server.users["otherbot"] = UserSpec("other-pat", ("pull", "push"), repositories=("otherbot/",))
    monkeypatch.setenv("DOCKERHUB_USERNAME", "otherbot")
    monkeypatch.setenv("DOCKERHUB_TOKEN", "other-pat")
    reg = PrivateRegistry.dockerhub("acme", ca_file=ca.ca_file)
    with reg.client(actions=("pull", "push")) as client, pytest.raises(AuthorizationError) as info:
        client.login("acme/app")
    assert "registry docker.io" in str(info.value) and "Read & Write" in str(info.value)
