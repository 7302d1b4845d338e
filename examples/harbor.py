"""Any registry that takes a username and password: Harbor, a self-hosted registry, Nexus, Quay.

export HARBOR_USER='robot$flyte-ci' HARBOR_TOKEN=...      # a robot account with push
pyflyte register examples/harbor.py
"""

from flytekit import ImageSpec, workflow

from flyte_private_registry import PrivateRegistry

harbor = PrivateRegistry(
    "harbor.example.com/ml",
    username_env="HARBOR_USER",
    password_env="HARBOR_TOKEN",
    pull_secret="harbor-pull",
    # a pull-only robot for the cluster's Secret (optional; else the push credential is used)
    pull_username="robot$flyte-pull",
    pull_password_env="HARBOR_PULL_TOKEN",
)
image = ImageSpec(name="trainer", packages=["flyte-private-registry", "pandas"], registry=harbor.registry)


@harbor.task(container_image=image)
def train(rows: int) -> int:
    return rows * 2


@workflow
def wf(rows: int = 10) -> int:
    return train(rows=rows)
