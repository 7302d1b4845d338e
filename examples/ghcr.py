"""GitHub Container Registry: GHCR_TOKEN/GITHUB_TOKEN with GHCR_USERNAME/GITHUB_ACTOR (set in Actions).

The push token needs write:packages; give the cluster a read:packages PAT as the pull credential.
"""

from flytekit import ImageSpec, workflow

from flyte_private_registry import PrivateRegistry

ghcr = PrivateRegistry.ghcr(
    "Acme",  # lower-cased: ghcr.io/acme
    pull_secret="ghcr-pull",
    pull_username="acme-bot",
    pull_password_env="GHCR_READ_TOKEN",
)
image = ImageSpec(name="etl", packages=["flyte-private-registry", "polars"], registry=ghcr.registry)


@ghcr.task(container_image=image)
def transform(x: int) -> int:
    return x + 1


@workflow
def wf(x: int = 1) -> int:
    return transform(x=x)
