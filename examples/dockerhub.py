"""Docker Hub private repositories: DOCKERHUB_USERNAME/DOCKERHUB_TOKEN (an access token, not the password)."""

from flytekit import ImageSpec, workflow

from flyte_private_registry import PrivateRegistry

hub = PrivateRegistry.dockerhub("acme", pull_secret="dockerhub-pull")
image = ImageSpec(
    name="inference", packages=["flyte-private-registry", "numpy"], registry=hub.registry
)  # docker.io/acme/inference


@hub.task(container_image=image)
def predict(x: float) -> float:
    return x * 0.5


@workflow
def wf(x: float = 4.0) -> float:
    return predict(x=x)
