"""GitLab: nested group paths, self-managed host:port, CI job credentials vs deploy tokens, refusals.

The end-to-end push runs "inside a GitLab CI job" (the CI variables GitLab sets) against a rig
registry answering as the self-managed ``gitlab.example.com:5050`` (127.0.0.53:5050 through
/etc/hosts), with Bearer tokens from a rig token server as GitLab's registry uses; the Python
client verifies TLS against the rig CA, dockerd does not (127.0.0.0/8 is insecure to it).
"""

from __future__ import annotations

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine
from provider_rig import build_env, image_spec, serve_as, split_image  # noqa: F401 (build_env: a fixture)
from rig import UserSpec

from flyte_private_registry import AuthorizationError, PrivateRegistry
from flyte_private_registry._reference import docker_config_key
from flyte_private_registry.providers import GitLabProvider, provider_for_host

SELF_MANAGED = "gitlab.example.com:5050"
GITLAB_VARS = (
    "GITLAB_CI",
    "CI_REGISTRY",
    "CI_REGISTRY_USER",
    "CI_REGISTRY_PASSWORD",
    "CI_JOB_TOKEN",
    "CI_DEPLOY_USER",
    "CI_DEPLOY_PASSWORD",
    "GITLAB_DEPLOY_USER",
    "GITLAB_DEPLOY_TOKEN",
    "GITLAB_TOKEN",
    "GITLAB_USERNAME",
    "GITLAB_USER_LOGIN",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in GITLAB_VARS:
        monkeypatch.delenv(name, raising=False)


def in_gitlab_ci(monkeypatch: pytest.MonkeyPatch, registry: str, job_token: str) -> None:
    """The variables GitLab sets in every job of a project with the container registry enabled."""
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("CI_REGISTRY", registry)
    monkeypatch.setenv("CI_REGISTRY_USER", "gitlab-ci-token")
    monkeypatch.setenv("CI_REGISTRY_PASSWORD", job_token)
    monkeypatch.setenv("CI_JOB_TOKEN", job_token)
    monkeypatch.setenv("GITLAB_USER_LOGIN", "alice")


@pytest.mark.parametrize(
    ("args", "kwargs", "registry", "config_key"),
    [
        (("group/project",), {}, "registry.gitlab.com/group/project", "registry.gitlab.com"),
        (("Group/Sub/Sub2/Project",), {}, "registry.gitlab.com/group/sub/sub2/project", "registry.gitlab.com"),
        (("team/proj",), {"host": "gitlab.example.com:5050"}, "gitlab.example.com:5050/team/proj", SELF_MANAGED),
        (("/acme/ml/",), {"host": "Registry.Example.com"}, "registry.example.com/acme/ml", "registry.example.com"),
    ],
)
def test_paths_and_hosts(args, kwargs, registry, config_key):
    reg = PrivateRegistry.gitlab(*args, **kwargs, pull_secret="gitlab-pull")
    assert reg.registry == registry and isinstance(reg.provider, GitLabProvider)
    assert docker_config_key(reg.host) == config_key  # docker config and dockerconfigjson key: host[:port]


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        (("",), {}, "needs a project or group path"),
        (("group/-project",), {}, "is not a GitLab group/project path"),
        (("group//project",), {}, "is not a GitLab group/project path"),
        (("team/proj",), {"host": "https://gitlab.example.com"}, "is not a bare registry host"),
        (("team/proj",), {"host": "gitlab.example.com/team"}, "is not a bare registry host"),
        (("team/proj",), {"host": "gitlab"}, "is not a registry host"),
        (("team/proj",), {"host": "gitlab.example.com:99999"}, "is not a registry host"),
    ],
)
def test_bad_paths_and_hosts(args, kwargs, needle):
    with pytest.raises(ValueError, match=needle) as info:
        PrivateRegistry.gitlab(*args, **kwargs)
    assert "expected" in str(info.value) or "e.g." in str(info.value)  # the message shows the form


def test_only_gitlab_com_is_inferred_from_the_host():
    assert isinstance(provider_for_host("registry.gitlab.com"), GitLabProvider)
    assert provider_for_host("gitlab.example.com:5050").kind == "generic"  # self-managed: use .gitlab(host=)


def test_ci_job_credentials_are_used_inside_ci_for_the_instance_registry(monkeypatch, canary_password):
    in_gitlab_ci(monkeypatch, SELF_MANAGED, canary_password)
    reg = PrivateRegistry.gitlab("team/proj", host=SELF_MANAGED)
    credential = reg.resolve().require()
    assert credential.username == "gitlab-ci-token"
    assert "CI_REGISTRY_PASSWORD" in credential.source and "push only" in credential.source

    monkeypatch.delenv("CI_REGISTRY_PASSWORD")  # registry variables absent: the job token itself
    credential = reg.resolve().require()
    assert credential.username == "gitlab-ci-token" and "CI_JOB_TOKEN" in credential.source
    assert canary_password not in reg.explain()


def test_ci_credentials_are_not_offered_to_another_instance(monkeypatch):
    in_gitlab_ci(monkeypatch, "registry.gitlab.com", "job-token")
    reg = PrivateRegistry.gitlab("team/proj", host=SELF_MANAGED)
    assert reg.resolve().credential is None
    assert "CI_REGISTRY is registry.gitlab.com: this job's token is for that registry" in reg.explain()


def test_outside_ci_job_tokens_are_ignored_and_deploy_tokens_or_pats_used(monkeypatch):
    monkeypatch.setenv("CI_JOB_TOKEN", "left-over")
    reg = PrivateRegistry.gitlab("team/proj")
    assert "not inside GitLab CI" in reg.explain()
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-x")
    monkeypatch.setenv("GITLAB_USERNAME", "alice")
    assert reg.resolve().require().username == "alice"
    monkeypatch.setenv("GITLAB_DEPLOY_USER", "gitlab+deploy-token-7")
    monkeypatch.setenv("GITLAB_DEPLOY_TOKEN", "gldt-x")
    assert reg.resolve().require().username == "gitlab+deploy-token-7"  # deploy token before PAT


def test_job_token_never_becomes_a_pull_secret_and_explain_says_why(monkeypatch, canary_password):
    in_gitlab_ci(monkeypatch, SELF_MANAGED, canary_password)
    reg = PrivateRegistry.gitlab("team/proj", host=SELF_MANAGED, pull_secret="gitlab-pull")
    pull = reg.resolve_pull(exhaustive=True)
    assert pull.credential is None
    text = pull.explain()
    assert "CI_JOB_TOKEN is set but not used: a job token dies with the job" in text
    assert "read_registry" in text and canary_password not in text

    monkeypatch.setenv("CI_DEPLOY_USER", "gitlab+deploy-token-1")  # the gitlab-deploy-token, exposed by GitLab
    monkeypatch.setenv("CI_DEPLOY_PASSWORD", "deploy-secret")
    pull = reg.resolve_pull()
    assert pull.require().username == "gitlab+deploy-token-1"
    assert reg.resolve().require().username == "gitlab-ci-token"  # the build still pushes with the job token


def test_refusal_hints_explain_registry_scopes():
    provider = GitLabProvider()
    assert "write_registry" in provider.refusal_hint("push", 403)
    assert "read_registry" in provider.refusal_hint("log in", 401) and "gitlab-ci-token" in provider.refusal_hint(
        "log in", 401
    )


# ------------------------------------------------------------------------------------ against a self-managed GitLab
@pytest.fixture(scope="module")
def gitlab(rig_dir, docker_engine, ca, canary_password):
    users = {
        "gitlab-ci-token": UserSpec(canary_password, ("pull", "push"), repositories=("group/sub/project",)),
        "gitlab+deploy-token-1": UserSpec("deploy-secret", ("pull",)),
    }
    with serve_as(
        rig_dir,
        docker_engine,
        ca,
        hostname="gitlab.example.com",
        ip="127.0.0.53",
        port=5050,
        users=users,
        service="container_registry",
    ) as stand_in:
        assert stand_in.host == SELF_MANAGED
        yield stand_in


@pytest.mark.usefixtures("build_env")
def test_imagespec_build_in_gitlab_ci_pushes_with_the_job_token(gitlab, ca, monkeypatch, capfd, canary_password):
    in_gitlab_ci(monkeypatch, SELF_MANAGED, canary_password)
    reg = PrivateRegistry.gitlab("Group/Sub/Project", host=SELF_MANAGED, ca_file=ca.ca_file)
    spec = image_spec(reg.registry)
    start = len(gitlab.token_server.requests)
    ImageBuildEngine.build(spec)
    out = capfd.readouterr()

    repository, tag = split_image(spec.image_name())
    assert repository.startswith("group/sub/project/app-")
    assert tag in gitlab.stored_tags(repository)
    users = {r.user for r in gitlab.token_server.requests[start:] if r.status == 200}
    assert users == {"gitlab-ci-token"}
    assert "Verified" in out.out
    for text in (out.out, out.err, gitlab.logs(), reg.explain()):
        assert canary_password not in text


def test_deploy_token_cannot_push_and_the_error_names_write_registry(gitlab, ca, monkeypatch):
    monkeypatch.setenv("GITLAB_DEPLOY_USER", "gitlab+deploy-token-1")
    monkeypatch.setenv("GITLAB_DEPLOY_TOKEN", "deploy-secret")
    reg = PrivateRegistry.gitlab("group/sub/project", host=SELF_MANAGED, ca_file=ca.ca_file)
    with reg.client(actions=("pull", "push")) as client, pytest.raises(AuthorizationError) as info:
        client.login("group/sub/project/app")
    assert "write_registry" in str(info.value) and "deploy-secret" not in str(info.value)
