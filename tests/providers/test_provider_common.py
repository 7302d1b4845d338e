"""What every provider shares: the one-line constructors, host inference, the auth entries written for
docker and for Kubernetes, config files, secrets kept out of text, and an import that stays cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from flyte_private_registry import ConfigurationError, PrivateRegistry, explain
from flyte_private_registry._catalog import CATALOG
from flyte_private_registry._reference import docker_config_key
from flyte_private_registry.credentials import Credential
from flyte_private_registry.providers import PROVIDERS, EcrProvider, GitLabProvider, provider_for_host
from flyte_private_registry.pull._dockerconfigjson import build as dockerconfigjson
from flyte_private_registry.push._build_env import HELPER_PROGRAM, private_docker_config

#: The declarations the issue promises, verbatim, and what ``.registry`` must say.
ONE_LINERS = [
    (
        lambda: PrivateRegistry.ecr(account_id="123456789012", region="us-east-1"),
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "ecr",
    ),
    (
        lambda: PrivateRegistry.ecr("123456789012.dkr.ecr.us-east-1.amazonaws.com/team"),
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/team",
        "ecr",
    ),
    (lambda: PrivateRegistry.ghcr("acme"), "ghcr.io/acme", "ghcr"),
    (lambda: PrivateRegistry.gitlab("group/sub/project"), "registry.gitlab.com/group/sub/project", "gitlab"),
    (
        lambda: PrivateRegistry.gitlab("team/proj", host="gitlab.example.com:5050"),
        "gitlab.example.com:5050/team/proj",
        "gitlab",
    ),
    (lambda: PrivateRegistry.dockerhub("acme"), "docker.io/acme", "dockerhub"),
    (
        lambda: PrivateRegistry.gar("us-central1", "my-project", "repo"),
        "us-central1-docker.pkg.dev/my-project/repo",
        "gar",
    ),
    (lambda: PrivateRegistry.acr("myregistry"), "myregistry.azurecr.io", "acr"),
]


@pytest.mark.parametrize(("declare", "registry", "kind"), ONE_LINERS)
def test_one_line_declarations(declare, registry, kind):
    reg = declare()
    assert reg.registry == registry and reg.provider.kind == kind
    assert CATALOG.for_spec(reg.registry, "app") is reg  # declared: ImageSpec(registry=...) now uses it


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("123456789012.dkr.ecr.eu-central-1.amazonaws.com", "ecr"),
        ("public.ecr.aws", "ecr"),
        ("ghcr.io", "ghcr"),
        ("registry.gitlab.com", "gitlab"),
        ("docker.io", "dockerhub"),
        ("index.docker.io", "dockerhub"),
        ("europe-west4-docker.pkg.dev", "gar"),
        ("gcr.io", "gar"),
        ("contoso.azurecr.io", "acr"),
        ("harbor.example.com", "generic"),
        ("localhost:5000", "generic"),
    ],
)
def test_provider_is_inferred_from_a_bare_prefix(host, kind):
    assert provider_for_host(host).kind == kind
    assert set(PROVIDERS) == {"generic", "ecr", "ghcr", "gitlab", "dockerhub", "gar", "acr"}


def test_constructors_pass_registry_arguments_through(tmp_path, monkeypatch, canary_password):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not read here")
    monkeypatch.setenv("GHCR_TOKEN", "from-env")
    monkeypatch.setenv("GHCR_USERNAME", "env-user")
    reg = PrivateRegistry.ghcr(
        "acme",
        username="robot",
        password=canary_password,
        pull_secret="ghcr-pull",
        pull_username="reader",
        pull_password="read-only",
        ca_file=ca_file,
        builder="docker-cli",
    )
    assert (reg.pull_secret, reg.ca_file, reg.builder) == ("ghcr-pull", ca_file, "docker-cli")
    assert reg.resolve().require().username == "robot"  # explicit credentials beat the provider's env vars
    assert reg.resolve_pull().require().username == "reader"
    monkeypatch.setenv("HUB_TOKEN", "t")
    hub = PrivateRegistry.dockerhub("acme", username="acmebot", password_env="HUB_TOKEN")
    assert hub.resolve().require().source == "env HUB_TOKEN"
    with pytest.raises(TypeError):
        PrivateRegistry.acr("myregistry", provider=EcrProvider())
    with pytest.raises(ConfigurationError, match="not a Kubernetes object name"):
        PrivateRegistry.gar("us-central1", "my-project", "repo", pull_secret="Not_Valid")


@pytest.mark.parametrize(("declare", "registry", "kind"), ONE_LINERS)
def test_secrets_never_show_in_reprs_dumps_or_explanations(declare, registry, kind, monkeypatch, canary_password):
    for variable in ("GHCR_TOKEN", "GITHUB_TOKEN", "CI_JOB_TOKEN", "DOCKERHUB_TOKEN", "ACR_TOKEN", "GITLAB_TOKEN"):
        monkeypatch.setenv(variable, canary_password)
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", canary_password)
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("DOCKERHUB_USERNAME", "acmebot")
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)  # no AWS identity: the ECR keychain misses quickly
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    reg = declare()
    explicit = type(reg)(reg.prefix, provider=reg.provider, username="u", password=canary_password)
    for text in (
        repr(reg),
        str(reg),
        repr(vars(reg)),
        reg.explain(),
        reg.resolve_pull(exhaustive=True).explain(),
        repr(explicit),
        repr(vars(explicit)),
        explicit.explain(),
        repr(explicit.resolve()),
        explain(f"{reg.registry}/app:v1"),
    ):
        assert canary_password not in text


@pytest.mark.parametrize(
    ("declare", "docker_key"),
    [
        (
            lambda: PrivateRegistry.ecr(account_id="123456789012", region="us-east-1"),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        ),
        (lambda: PrivateRegistry.ghcr("acme"), "ghcr.io"),
        (lambda: PrivateRegistry.gitlab("team/proj", host="gitlab.example.com:5050"), "gitlab.example.com:5050"),
        (lambda: PrivateRegistry.dockerhub("acme"), "https://index.docker.io/v1/"),
        (lambda: PrivateRegistry.gar("us-central1", "my-project", "repo"), "us-central1-docker.pkg.dev"),
        (lambda: PrivateRegistry.acr("myregistry"), "myregistry.azurecr.io"),
    ],
)
def test_auth_entries_for_docker_and_kubernetes(declare, docker_key, user_docker_config, canary_password):
    """The key docker looks the helper up by during a build, and the key of the pull Secret's entry."""
    reg = declare()
    credential = Credential("robot", SecretStr(canary_password), source="test")
    assert docker_config_key(reg.host) == docker_key

    # docker: the temporary config routes exactly that key to our helper, which answers for it
    with private_docker_config({reg.reference.canonical_host: credential}) as env:
        config = json.loads((env.directory / "config.json").read_text())
        assert config["credHelpers"] == {docker_key: "flyte-private-registry"}
        got = subprocess.run(
            [HELPER_PROGRAM, "get"],
            input=docker_key,  # what the docker CLI sends as ServerURL: the key it matched
            env={**os.environ, **env.env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(got.stdout)["Username"] == "robot"

    # Kubernetes: the .dockerconfigjson entry (docker's key rule; kubelet accepts it too)
    payload = json.loads(dockerconfigjson({reg.host: credential}))
    assert list(payload["auths"]) == [docker_key]


def test_config_file_names_providers_and_their_options(tmp_path, monkeypatch):
    config = tmp_path / "registries.toml"
    config.write_text(
        """
[[registry]]
prefix = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml"
provider = "ecr"
create_repository = true
tag_mutability = "immutable"
scan_on_push = true
pull_secret = "ecr-pull"

[[registry]]
prefix = "gitlab.example.com:5050/team/proj"
provider = "gitlab"

[[registry]]
prefix = "ghcr.io/acme"
"""
    )
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_CONFIG", str(config))
    CATALOG.clear()
    ecr = CATALOG.for_spec("123456789012.dkr.ecr.us-east-1.amazonaws.com/ml", "trainer")
    assert isinstance(ecr.provider, EcrProvider) and ecr.provider.tag_mutability == "IMMUTABLE"
    assert ecr.provider.scan_on_push is True and ecr.pull_secret == "ecr-pull"
    assert isinstance(CATALOG.for_spec("gitlab.example.com:5050/team/proj", "x").provider, GitLabProvider)
    assert CATALOG.for_spec("ghcr.io/acme", "x").provider.kind == "ghcr"  # inferred from the host

    config.write_text('[[registry]]\nprefix = "ghcr.io/acme"\nprovider = "ecr"\ntag_mutability = "sometimes"\n')
    CATALOG.clear()
    with pytest.raises(ConfigurationError, match="provider 'ecr' options"):
        CATALOG.registries()


def test_explain_an_undeclared_image_shows_the_provider_sources(monkeypatch):
    monkeypatch.delenv("GHCR_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    text = explain("ghcr.io/acme/app:v1")
    assert "not declared" in text and "provider ghcr" in text
    assert "env GHCR_TOKEN (GHCR_USERNAME/GITHUB_ACTOR): missing: GHCR_TOKEN is not set" in text
    assert "env GITHUB_TOKEN" in text and "docker config" in text


def test_importing_the_plugin_and_declaring_every_provider_imports_no_cloud_sdk():
    script = """
import sys
import flytekit
from flyte_private_registry import PrivateRegistry
PrivateRegistry.ecr(account_id="123456789012", region="us-east-1")
PrivateRegistry.ghcr("acme"); PrivateRegistry.gitlab("g/p"); PrivateRegistry.dockerhub("acme")
PrivateRegistry.gar("us-central1", "my-project", "repo"); PrivateRegistry.acr("myregistry")
heavy = sorted(m for m in ("boto3", "botocore", "google.auth", "azure.identity") if m in sys.modules)
print(heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_provider_with_options_must_be_a_pydantic_model():
    from typing import ClassVar

    from pydantic import BaseModel

    from flyte_private_registry.providers import Provider

    with pytest.raises(TypeError, match=r"class HarborLike\(BaseModel, Provider\)"):

        class HarborLike(Provider):
            kind: ClassVar[str] = "harbor"
            project: str

    class HarborModel(BaseModel, Provider):
        kind: ClassVar[str] = "harbor"
        project: str

    assert HarborModel(project="ml") == HarborModel(project="ml") != HarborModel(project="cv")

    class Plain(Provider):
        kind: ClassVar[str] = "plain"

    assert Plain() == Plain() and repr(Plain()) == "Plain()"
    with pytest.raises(TypeError, match="the plain provider takes no options, got project"):
        Plain(project="ml")
