"""GitLab Container Registry: CI_REGISTRY_USER/CI_REGISTRY_PASSWORD inside GitLab CI, a deploy token elsewhere.

Never make a CI_JOB_TOKEN the pull secret (it dies with the job): use a deploy token with read_registry.
"""

from flytekit import ImageSpec, workflow

from flyte_private_registry import PrivateRegistry

gitlab = PrivateRegistry.gitlab(
    "acme/ml/pipelines",  # nested groups: registry.gitlab.com/acme/ml/pipelines
    pull_secret="gitlab-pull",
    pull_username="gitlab+deploy-token-42",
    pull_password_env="GITLAB_DEPLOY_TOKEN",
)
self_managed = PrivateRegistry.gitlab("team/proj", host="gitlab.example.com:5050", pull_secret="gitlab-internal-pull")

image = ImageSpec(name="features", packages=["flyte-private-registry", "pyarrow"], registry=gitlab.registry)
internal = ImageSpec(name="scorer", packages=["flyte-private-registry"], registry=self_managed.registry)


@gitlab.task(container_image=image)
def features(n: int) -> int:
    return n * 10


@self_managed.task(container_image=internal)
def score(n: int) -> int:
    return n - 1


@workflow
def wf(n: int = 2) -> int:
    return score(n=features(n=n))
