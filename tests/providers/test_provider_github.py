"""GHCR: owner names, PAT and Actions env vars, pull-secret rules, refusals, and a push to "ghcr.io".

The push goes to a rig registry answering as ``ghcr.io`` (mapped in /etc/hosts to 127.0.0.52:443)
with Bearer tokens from a rig token server, as GHCR does; the Python client verifies its TLS
certificate against the rig CA. dockerd does not (it treats 127.0.0.0/8 as insecure).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine
from provider_rig import build_env, image_spec, serve_as, split_image  # noqa: F401 (build_env: a fixture)
from rig import UserSpec

from flyte_private_registry import (
    AuthenticationError,
    AuthorizationError,
    Credential,
    PrivateRegistry,
)
from flyte_private_registry.providers import GhcrProvider, provider_for_host
from flyte_private_registry.providers._env import ConventionKeychain

GHCR_VARS = ("GHCR_TOKEN", "GHCR_USERNAME", "GITHUB_TOKEN", "GITHUB_ACTOR", "GITHUB_ACTIONS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in GHCR_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("owner", "registry"),
    [
        ("acme", "ghcr.io/acme"),
        ("Acme-Labs", "ghcr.io/acme-labs"),
        ("OctoCat/ML", "ghcr.io/octocat/ml"),
        ("ghcr.io/acme", "ghcr.io/acme"),
        ("a" * 39, "ghcr.io/" + "a" * 39),
    ],
)
def test_owner_forms(owner, registry):
    reg = PrivateRegistry.ghcr(owner, pull_secret="ghcr-pull")
    assert reg.registry == registry and reg.pull_secret == "ghcr-pull"
    assert isinstance(reg.provider, GhcrProvider)


@pytest.mark.parametrize("owner", ["", "-acme", "acme-", "acme--labs", "acme_labs", "a" * 40, "acme.io"])
def test_bad_owners_name_the_expected_form(owner):
    with pytest.raises(ValueError, match="GitHub"):
        PrivateRegistry.ghcr(owner)


def test_bare_prefix_is_recognised():
    assert isinstance(provider_for_host("ghcr.io"), GhcrProvider)
    assert PrivateRegistry("ghcr.io/acme").provider.kind == "ghcr"
    assert not isinstance(provider_for_host("ghcr.io.example.com"), GhcrProvider)


@pytest.mark.parametrize(
    ("env", "user", "source"),
    [
        ({"GHCR_TOKEN": "pat", "GHCR_USERNAME": "alice"}, "alice", "env GHCR_TOKEN"),
        ({"GHCR_TOKEN": "pat", "GITHUB_ACTOR": "octocat"}, "octocat", "env GHCR_TOKEN"),
        ({"GITHUB_TOKEN": "ghs", "GITHUB_ACTOR": "octocat"}, "octocat", "env GITHUB_TOKEN"),
        ({"GHCR_TOKEN": "p", "GHCR_USERNAME": "alice", "GITHUB_TOKEN": "g", "GITHUB_ACTOR": "b"}, "alice", "GHCR_"),
    ],
)  # fmt: skip
def test_credential_discovery(monkeypatch, env, user, source):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    credential = PrivateRegistry.ghcr("acme").resolve().require()
    assert credential.username == user and source in credential.source


def test_token_without_a_user_is_explained(monkeypatch):
    monkeypatch.setenv("GHCR_TOKEN", "pat")
    text = PrivateRegistry.ghcr("acme").explain()
    assert "GHCR_TOKEN is set but GHCR_USERNAME or GITHUB_ACTOR is not" in text


def test_docker_login_and_explicit_credentials(monkeypatch, user_docker_config: Path):
    auth = base64.b64encode(b"dockeruser:pw").decode()
    (user_docker_config / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": auth}}}))
    assert PrivateRegistry.ghcr("acme").resolve().require().username == "dockeruser"
    monkeypatch.setenv("GHCR_TOKEN", "pat")
    monkeypatch.setenv("GHCR_USERNAME", "alice")
    assert PrivateRegistry.ghcr("acme").resolve().require().username == "alice"  # env convention beats docker
    explicit = PrivateRegistry.ghcr("acme", username="bot", password="x")
    assert explicit.resolve().require().source == "explicit username/password"  # explicit beats both


def test_actions_token_pushes_but_never_becomes_a_pull_secret(monkeypatch, canary_password):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GITHUB_TOKEN", canary_password)
    reg = PrivateRegistry.ghcr("acme", pull_secret="ghcr-pull")
    assert "push only" in reg.resolve().require().source
    pull = reg.resolve_pull(exhaustive=True)
    assert pull.credential is None
    assert "GITHUB_TOKEN is set but not used: it expires with the workflow job" in pull.explain()
    assert canary_password not in pull.explain() + reg.explain()

    monkeypatch.setenv("GHCR_PULL_TOKEN", "read-only-pat")
    reader = PrivateRegistry.ghcr("acme", pull_username="octocat", pull_password_env="GHCR_PULL_TOKEN")
    assert reader.resolve_pull().require().password.get_secret_value() == "read-only-pat"
    monkeypatch.setenv("GHCR_TOKEN", "pat")
    assert reg.resolve_pull().require().source.startswith("env GHCR_TOKEN")  # a PAT may be a pull secret


def test_push_only_keychains_are_left_out_of_every_pull_chain():
    """The rule lives in PrivateRegistry.pull_keychains, for any source that says it is push-only."""
    job = ConventionKeychain(token_env="SOME_JOB_TOKEN", username="ci", push_only=True)
    reg = PrivateRegistry("ghcr.io/acme", keychains=(job,))
    assert job in reg.all_keychains() and job not in reg.pull_keychains()


def test_refusal_hints_explain_write_packages():
    provider = GhcrProvider()
    push = provider.refusal_hint("push", 403)
    assert "write:packages" in push and "permissions: packages: write" in push and "Manage Actions access" in push
    assert "read:packages" in provider.refusal_hint("log in", 401)


# ------------------------------------------------------------------------------------ against "ghcr.io"
@pytest.fixture(scope="module")
def ghcr(rig_dir, docker_engine, ca, canary_password):
    users = {
        "octocat": UserSpec(canary_password, ("pull", "push")),
        "reader": UserSpec("read-only-pat", ("pull",)),
    }
    with serve_as(rig_dir, docker_engine, ca, hostname="ghcr.io", ip="127.0.0.52", users=users) as stand_in:
        yield stand_in


def test_read_only_token_is_refused_before_the_build_with_the_scope_to_fix(ghcr, ca, monkeypatch):
    monkeypatch.setenv("GHCR_TOKEN", "read-only-pat")
    monkeypatch.setenv("GHCR_USERNAME", "reader")
    reg = PrivateRegistry.ghcr("acme", ca_file=ca.ca_file)
    with reg.client(actions=("pull", "push")) as client, pytest.raises(AuthorizationError) as info:
        client.login("acme/app")
    assert "granted only ['pull']" in str(info.value) and "write:packages" in str(info.value)

    monkeypatch.setenv("GHCR_TOKEN", "not-the-pat-123")
    with (
        PrivateRegistry.ghcr("acme", ca_file=ca.ca_file).client() as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.login("acme/app")
    assert "HTTP 401" in str(info.value) and "classic personal access token" in str(info.value)
    assert "not-the-pat-123" not in str(info.value)


@pytest.mark.usefixtures("build_env")
def test_imagespec_build_in_github_actions_pushes_to_ghcr(ghcr, ca, monkeypatch, capfd, canary_password):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GITHUB_TOKEN", canary_password)
    reg = PrivateRegistry.ghcr("Acme", ca_file=ca.ca_file)
    spec = image_spec(reg.registry)
    start = len(ghcr.token_server.requests)
    ImageBuildEngine.build(spec)
    out = capfd.readouterr()

    repository, tag = split_image(spec.image_name())
    assert spec.image_name().startswith("ghcr.io/acme/app-")
    assert tag in ghcr.stored_tags(repository)
    pushes = [r for r in ghcr.token_server.requests[start:] if "push" in " ".join(r.granted_scopes)]
    assert pushes and {r.user for r in pushes} == {"octocat"}  # dockerd pushed with the Actions token
    assert "Verified" in out.out
    for text in (out.out, out.err, ghcr.logs(), repr(reg), reg.explain()):
        assert canary_password not in text
    assert os.environ["GITHUB_TOKEN"] == canary_password  # the build did not consume or alter it
    assert isinstance(reg.resolve().credential, Credential)
