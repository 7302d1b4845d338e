"""The registry v2 client against real registries: Basic over HTTP, Bearer tokens over TLS."""

import time

import pytest
from helpers import docker_push, push_oci_manifest
from pydantic import SecretStr
from rig import CertificateAuthority

from flyte_private_registry import AuthenticationError, AuthorizationError, RegistryClient, RegistryError
from flyte_private_registry.credentials import Credential
from flyte_private_registry.distribution._client import MANIFEST_ACCEPT

pytestmark = pytest.mark.integration


def _cred(user: str, password: str, source: str = "test fixture") -> Credential:
    return Credential(user, SecretStr(password), source=source)


@pytest.fixture(scope="module")
def seeded(docker_engine, basic_registry, token_registry, registry_users, tmp_path_factory):
    """One image pushed by the plain docker CLI to each registry: (image, digest) per registry."""
    source = docker_engine.build_scratch_image("seed/hello:1", {"/hello.txt": b"hello"})
    config = tmp_path_factory.mktemp("seed-docker-config")
    out = {}
    for name, registry in (("basic", basic_registry), ("token", token_registry)):
        image = registry.reference("team/hello", "v1")
        out[name] = (image, docker_push(docker_engine, source, image, "alice", registry_users.alice_password, config))
    return out


def test_basic_login_and_existence(basic_registry, registry_users, seeded):
    _, digest = seeded["basic"]
    with RegistryClient(basic_registry.host, _cred("alice", registry_users.alice_password)) as client:
        assert client.login("team/hello").scheme == "basic"
        assert client.manifest_digest("team/hello", "v1") == digest
        assert client.manifest_digest("team/hello", "nope") is None
        assert client.manifest_digest("team/never-pushed", "v1") is None
        assert client.exists("team/hello", "v1")


def test_wrong_password_names_registry_user_and_source_fast(basic_registry, canary_password):
    wrong = "wrong-" + canary_password
    client = RegistryClient(basic_registry.host, _cred("alice", wrong, source="env HARBOR_USER/HARBOR_TOKEN"))
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        client.login("team/hello")
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < 2.0
    assert basic_registry.host in message and "'alice'" in message and "env HARBOR_USER/HARBOR_TOKEN" in message
    assert "HTTP 401" in message
    assert wrong not in message and canary_password not in message and wrong not in repr(client)


def test_anonymous_against_auth_registry_is_an_error_not_a_guess(basic_registry):
    client = RegistryClient(basic_registry.host, None)
    with pytest.raises(AuthenticationError, match="requires authentication"):
        client.login("team/hello")
    with pytest.raises(AuthenticationError, match="refused anonymous access"):
        client.manifest_digest("team/hello", "v1")


def test_bearer_login_push_scope_over_verified_tls(token_registry, token_server, registry_users, seeded, ca):
    _, digest = seeded["token"]
    token_server.clear_requests()
    cred = _cred("alice", registry_users.alice_password)
    with RegistryClient(token_registry.host, cred, ca_file=ca.ca_file, actions=("pull", "push")) as client:
        result = client.login("team/hello")
        assert result.scheme == "bearer" and result.granted == {"pull", "push"}
        assert client.manifest_digest("team/hello", "v1") == digest
    # one token for login + HEAD: the scope asked for at login already covers pull
    assert [r.scopes for r in token_server.requests_by("alice")] == [["repository:team/hello:pull,push"]]


def test_reduced_scope_is_an_authorization_error_before_any_build(token_registry, registry_users, ca):
    client = RegistryClient(
        token_registry.host,
        _cred("reader", registry_users.reader_password, source="env READER"),
        ca_file=ca.ca_file,
        actions=("pull", "push"),
    )
    with pytest.raises(AuthorizationError) as info:
        client.login("team/hello")
    assert "granted only ['pull']" in str(info.value) and "'reader'" in str(info.value)
    assert registry_users.reader_password not in str(info.value)


def test_wrong_password_at_token_service(token_registry, canary_password, ca):
    client = RegistryClient(token_registry.host, _cred("alice", "bad-" + canary_password), ca_file=ca.ca_file)
    with pytest.raises(AuthenticationError) as info:
        client.login("team/hello")
    assert "token service" in str(info.value) and "'alice'" in str(info.value)
    assert canary_password not in str(info.value)


def test_tls_is_verified_when_a_ca_is_given(token_registry, registry_users, tmp_path):
    stranger = CertificateAuthority(tmp_path, common_name="some other CA")
    client = RegistryClient(
        token_registry.host, _cred("alice", registry_users.alice_password), ca_file=stranger.ca_file
    )
    with pytest.raises(RegistryError, match="cannot reach registry"):
        client.login("team/hello")


def test_hundred_tags_one_token(token_registry, token_server, registry_users, seeded, ca):
    tags = ["v1"] + [f"missing-{i}" for i in range(99)]
    token_server.clear_requests()
    with RegistryClient(token_registry.host, _cred("alice", registry_users.alice_password), ca_file=ca.ca_file) as c:
        digests = c.manifest_digests("team/hello", tags)
    assert digests["v1"] == seeded["token"][1]
    assert sum(d is None for d in digests.values()) == 99
    assert len(token_server.requests_by("alice")) == 1


def test_oci_images_are_found_only_with_the_full_accept_list(token_registry, registry_users, ca):
    cred = _cred("alice", registry_users.alice_password)
    digest = push_oci_manifest(token_registry, cred, ca.ca_file, "team/oci", "v1")
    with RegistryClient(token_registry.host, cred, ca_file=ca.ca_file) as client:
        assert client.manifest_digest("team/oci", "v1") == digest
        # the narrow Accept that naive checks send makes the same image look missing
        narrow = client._http.head(
            client._url("/v2/team/oci/manifests/v1"),
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
    assert narrow.status_code == 404
    assert "application/vnd.oci.image.index.v1+json" in MANIFEST_ACCEPT


def test_trusts_what_docker_trusts_for_a_registry_on_a_private_ca(
    docker_engine, ca, registry_users, rig_dir, tmp_path, monkeypatch
):
    """A registry under a real hostname on an internal CA: docker's certs.d makes it trusted, nothing else does."""
    from provider_rig import serve_as

    from flyte_private_registry.distribution import _client as _distribution

    with serve_as(
        rig_dir,
        docker_engine,
        ca,
        hostname="registry.internal.test",
        ip="127.0.0.58",
        users={"alice": registry_users.alice_password},
    ) as stand_in:
        cred = _cred("alice", registry_users.alice_password)
        monkeypatch.setattr(_distribution, "DOCKER_CERTS_DIR", tmp_path / "certs.d")
        with pytest.raises(RegistryError, match="certificate verify failed"):
            RegistryClient(stand_in.host, cred).login("team/app")
        (tmp_path / "certs.d" / stand_in.host).mkdir(parents=True)
        (tmp_path / "certs.d" / stand_in.host / "ca.crt").write_bytes(ca.ca_file.read_bytes())
        assert RegistryClient(stand_in.host, cred).login("team/app").scheme == "bearer"
