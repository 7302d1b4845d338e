"""Google Artifact Registry: user oauth2accesstoken with a token from google-auth (or a JSON key for pulls).

pip install 'flyte-private-registry[gcp]'
"""

from flytekit import ImageSpec, workflow

from flyte_private_registry import PrivateRegistry

gar = PrivateRegistry.gar(
    "us-central1",
    "my-project",
    "flyte",
    pull_secret="gar-pull",
    pull_username="_json_key",  # a service-account key with roles/artifactregistry.reader
    pull_password_env="GAR_READER_KEY_JSON",
)
image = ImageSpec(name="trainer", packages=["flyte-private-registry", "torch"], registry=gar.registry)


@gar.task(container_image=image)
def train(epochs: int) -> int:
    return epochs


@workflow
def wf(epochs: int = 1) -> int:
    return train(epochs=epochs)
