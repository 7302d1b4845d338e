"""Credential sources and the order they are asked in (docker's own precedence for its config)."""

import base64

import pytest
from helpers import prepend_path, write_docker_config, write_fake_helper
from pydantic import SecretStr

from flyte_private_registry import CredentialsError, MissingEnvironmentVariable, PrivateRegistry
from flyte_private_registry._reference import RegistryPrefix
from flyte_private_registry.credentials import (
    Credential,
    DockerConfigKeychain,
    EnvKeychain,
    Miss,
    StaticKeychain,
    resolve,
)

HARBOR = RegistryPrefix.parse("harbor.example.com/ml")


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credential_repr_hides_the_secret(canary_password):
    cred = Credential("alice", SecretStr(canary_password), source="explicit")
    assert canary_password not in repr(cred)
    assert canary_password not in str(cred)
    assert "alice" in repr(cred)


def test_env_keychain_reads_at_resolve_time(monkeypatch):
    chain = EnvKeychain(username_env="H_USER", password_env="H_TOKEN")
    monkeypatch.setenv("H_USER", "alice")
    monkeypatch.setenv("H_TOKEN", "t0k3n")
    cred = chain.resolve(HARBOR)
    assert isinstance(cred, Credential)
    assert (cred.username, cred.password.get_secret_value(), cred.source) == (
        "alice",
        "t0k3n",
        "env H_USER/H_TOKEN",
    )


def test_named_env_var_missing_is_an_error_naming_it(monkeypatch):
    monkeypatch.setenv("H_USER", "alice")
    monkeypatch.delenv("H_TOKEN", raising=False)
    with pytest.raises(MissingEnvironmentVariable) as info:
        EnvKeychain(username_env="H_USER", password_env="H_TOKEN").resolve(HARBOR)
    assert info.value.variable == "H_TOKEN"
    assert "H_TOKEN" in str(info.value) and "harbor.example.com/ml" in str(info.value)
    assert "export H_TOKEN=" in str(info.value)


def test_non_strict_env_keychain_misses_quietly(monkeypatch):
    monkeypatch.delenv("GHCR_TOKEN", raising=False)
    answer = EnvKeychain(password_env="GHCR_TOKEN", username_literal="x", strict=False).resolve(HARBOR)
    assert isinstance(answer, Miss) and "GHCR_TOKEN is not set" in answer.reason


def test_auths_entry_in_every_spelling(user_docker_config):
    write_docker_config(user_docker_config, {"auths": {"https://harbor.example.com/v2/": {"auth": _auth("bob", "pw")}}})
    cred = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(cred, Credential) and cred.username == "bob"
    assert "auths['https://harbor.example.com/v2/']" in cred.source


def test_docker_hub_uses_the_index_key(user_docker_config):
    write_docker_config(
        user_docker_config, {"auths": {"https://index.docker.io/v1/": {"auth": _auth("hubuser", "pw")}}}
    )
    cred = DockerConfigKeychain().resolve(RegistryPrefix.parse("docker.io/acme"))
    assert isinstance(cred, Credential) and cred.username == "hubuser"


def test_identity_token_is_kept_as_refresh_token(user_docker_config):
    write_docker_config(user_docker_config, {"auths": {"harbor.example.com": {"identitytoken": "refresh-me"}}})
    cred = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(cred, Credential) and cred.identity_token and cred.username == "<token>"


def test_cred_helper_beats_store_beats_auths(user_docker_config, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    write_fake_helper(bin_dir, "perhost", {"harbor.example.com": ("from-helper", "a")})
    write_fake_helper(bin_dir, "store", {"harbor.example.com": ("from-store", "b")})
    prepend_path(monkeypatch, bin_dir)
    config = {
        "auths": {"harbor.example.com": {"auth": _auth("from-auths", "c")}},
        "credsStore": "store",
        "credHelpers": {"harbor.example.com": "perhost"},
    }
    write_docker_config(user_docker_config, config)
    assert DockerConfigKeychain().resolve(HARBOR).username == "from-helper"

    del config["credHelpers"]
    write_docker_config(user_docker_config, config)
    cred = DockerConfigKeychain().resolve(HARBOR)
    assert cred.username == "from-store" and "credsStore" in cred.source


def test_creds_store_without_entry_ignores_auths_like_docker(user_docker_config, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    write_fake_helper(bin_dir, "desktop", {})
    prepend_path(monkeypatch, bin_dir)
    write_docker_config(
        user_docker_config,
        {"auths": {"harbor.example.com": {"auth": _auth("stale", "c")}}, "credsStore": "desktop"},
    )
    answer = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(answer, Miss)
    assert "docker ignores auths" in answer.reason


def test_missing_helper_binary_is_a_miss_with_reason(user_docker_config):
    write_docker_config(user_docker_config, {"credHelpers": {"harbor.example.com": "nosuchhelper"}})
    answer = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(answer, Miss) and "docker-credential-nosuchhelper is not on PATH" in answer.reason


def test_route_to_ourselves_falls_through_to_what_docker_would_find_without_it(user_docker_config):
    write_docker_config(
        user_docker_config,
        {
            "credHelpers": {"harbor.example.com": "flyte-private-registry"},
            "auths": {"harbor.example.com": {"auth": _auth("bob", "pw")}},
        },
    )
    answer = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(answer, Credential) and answer.username == "bob"


def test_resolution_order_and_explain(user_docker_config, monkeypatch, canary_password):
    write_docker_config(user_docker_config, {"auths": {"harbor.example.com": {"auth": _auth("bob", "pw")}}})
    monkeypatch.setenv("H_USER", "alice")
    monkeypatch.setenv("H_TOKEN", canary_password)
    registry = PrivateRegistry("harbor.example.com/ml", username_env="H_USER", password_env="H_TOKEN")
    resolution = registry.resolve()
    assert resolution.credential.username == "alice"
    assert [a.outcome for a in resolution.attempts] == ["used", "skipped"]

    text = registry.explain()
    assert "using env H_USER/H_TOKEN (user 'alice')" in text
    assert "user 'bob', but an earlier source wins" in text
    assert canary_password not in text


def test_nothing_found_lists_every_source(user_docker_config):
    resolution = resolve([DockerConfigKeychain()], HARBOR)
    assert resolution.credential is None
    with pytest.raises(
        CredentialsError, match=r"(?s)no credentials for registry harbor.example.com/ml.*no docker config"
    ):
        resolution.require()


def test_static_keychain_is_first(user_docker_config):
    chain = [StaticKeychain("a", SecretStr("b")), DockerConfigKeychain()]
    assert resolve(chain, HARBOR).credential.username == "a"


# -- malformed docker configs: a Miss that says which field and what docker expects, never a crash --------------
@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"auths": {"harbor.example.com": {"auth": 5}}}, "auth is a number, expected a string"),
        ({"auths": {"harbor.example.com": {"auth": "not base64!"}}}, "auth is not base64 of user:password"),
        ({"auths": {"harbor.example.com": {"auth": "h\u00e9"}}}, "auth is not base64 of user:password"),
        (
            {"auths": {"harbor.example.com": {"identitytoken": {"a": 1}}}},
            "identitytoken is an object, expected a string",
        ),
        ({"auths": {"harbor.example.com": {"username": 5, "password": "x"}}}, "username is a number"),
        ({"auths": {"harbor.example.com": {"username": "u", "password": ["x"]}}}, "password is a list"),
        ({"auths": {"harbor.example.com": "dXNlcjpwdw=="}}, "entry is a string, expected an object"),
        ({"auths": [1]}, "auths is a list, expected an object mapping registry hosts to entries"),
        ({"credHelpers": ["x"]}, "credHelpers is a list, expected an object mapping hosts to helper names"),
        (
            {"credHelpers": {"harbor.example.com": 5}},
            "credHelpers['harbor.example.com'] is a number, expected a string",
        ),
        ({"credHelpers": {"harbor.example.com": "../../bin/sh"}}, "'../../bin/sh', which is not a credential helper"),
        ({"credsStore": 5}, "credsStore is a number, expected a string naming a credential helper"),
        ({"credsStore": True}, "credsStore is a boolean"),
    ],
)
def test_malformed_docker_config_is_a_miss_naming_the_field(user_docker_config, config, needle):
    write_docker_config(user_docker_config, config)
    answer = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(answer, Miss), answer
    assert needle in answer.reason


@pytest.mark.parametrize("text", ["[1, 2]", '"just a string"', "null", "{not json", "[" * 100_000, "\xff\xfe"])
def test_docker_config_that_is_not_an_object_is_a_miss(user_docker_config, text):
    (user_docker_config / "config.json").write_bytes(text.encode("latin-1"))
    answer = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(answer, Miss) and str(user_docker_config) in answer.reason


def test_malformed_entries_for_other_hosts_do_not_hide_this_one(user_docker_config):
    write_docker_config(
        user_docker_config,
        {"auths": {"other.example.com": {"auth": 5}, "harbor.example.com": {"auth": _auth("bob", "pw")}}},
    )
    answer = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(answer, Credential) and answer.username == "bob"


def test_explain_shows_the_malformed_field(user_docker_config):
    write_docker_config(user_docker_config, {"credHelpers": ["harbor.example.com"]})
    registry = PrivateRegistry("harbor.example.com/ml")
    assert "credHelpers is a list, expected an object mapping hosts to helper names" in registry.explain()


def _write_raw_helper(bin_dir, name: str, stdout: bytes, code: int = 0):
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / f"{name}.out").write_bytes(stdout)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text(f"#!/bin/sh\ncat '{bin_dir / (name + '.out')}'\nexit {code}\n")
    path.chmod(0o755)


@pytest.mark.parametrize(
    ("stdout", "needle"),
    [
        (b"[]", "answered a list, expected a JSON object"),
        (b"null", "answered null"),
        (b'{"Username": 5, "Secret": "s"}', "Username is a number, expected a string"),
        (b'{"Username": "u", "Secret": {"k": "v"}}', "Secret is an object, expected a string"),
        (b'{"Username": "u"}', "Secret is missing"),
        (b"\xff\xfe not utf-8", "not helper JSON"),
        (b'{"Username": "u", "Secret": ""}', "empty secret"),
    ],
)
def test_helper_output_that_is_not_valid_is_a_miss(user_docker_config, tmp_path, monkeypatch, stdout, needle):
    _write_raw_helper(tmp_path / "bin", "weird", stdout)
    prepend_path(monkeypatch, tmp_path / "bin")
    write_docker_config(user_docker_config, {"credHelpers": {"harbor.example.com": "weird"}})
    answer = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(answer, Miss) and needle in answer.reason


def test_helper_that_cannot_be_executed_is_a_miss(user_docker_config, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-broken"
    helper.write_text("#!/nonexistent/interpreter\n")
    helper.chmod(0o755)
    prepend_path(monkeypatch, bin_dir)
    write_docker_config(user_docker_config, {"credsStore": "broken"})
    answer = DockerConfigKeychain().resolve(HARBOR)
    assert isinstance(answer, Miss) and "could not be run" in answer.reason


def test_a_credential_keeps_its_password_as_a_secret_whatever_it_was_given(canary_password):
    """str, our Secret and pydantic's SecretStr all become a Secret that never shows itself."""
    import pickle

    from pydantic import SecretStr

    from flyte_private_registry.credentials import Secret

    given = (canary_password, Secret(canary_password), SecretStr(canary_password))
    credentials = [Credential("alice", password, source="test") for password in given]
    for credential in credentials:
        assert isinstance(credential.password, Secret)
        assert credential.password.get_secret_value() == canary_password
        for text in (repr(credential), str(credential), repr(credential.password), str(credential.password)):
            assert canary_password not in text
        assert pickle.loads(pickle.dumps(credential)) == credential
    assert credentials[0] == credentials[1] == credentials[2]
    with pytest.raises(TypeError, match="a secret must be a string, got int"):
        Credential("alice", 5, source="test")  # type: ignore[arg-type]
