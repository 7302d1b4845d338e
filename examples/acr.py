"""Azure Container Registry: an ACR token (user 00000000-0000-0000-0000-000000000000) or a service principal."""

from flytekit import ImageSpec, workflow

from flyte_private_registry import PrivateRegistry

acr = PrivateRegistry.acr(
    "myregistry",  # myregistry.azurecr.io
    pull_secret="acr-pull",
    pull_username="flyte-pull-token",  # an ACR repository-scoped token with content/read
    pull_password_env="ACR_PULL_TOKEN",
)
image = ImageSpec(name="batch", packages=["flyte-private-registry", "pandas"], registry=acr.registry)


@acr.task(container_image=image)
def batch(n: int) -> int:
    return n * n


@workflow
def wf(n: int = 3) -> int:
    return batch(n=n)
