"""AWS ECR: tokens from boto3's credential chain (profile, SSO, role, IRSA), repositories created on push.

pip install 'flyte-private-registry[aws]'
pyflyte register examples/ecr.py
flyte-private-registry secret render --project flytesnacks --refresher cronjob -o ecr-pull.yaml
"""

from flytekit import ImageSpec, workflow

from flyte_private_registry import PrivateRegistry

ecr = PrivateRegistry.ecr(
    account_id="123456789012",
    region="us-east-1",
    scan_on_push=True,
    tag_mutability="IMMUTABLE",
    pull_secret="ecr-pull",  # kept fresh by a refresher: ECR tokens last 12 hours
)
image = ImageSpec(name="trainer", packages=["flyte-private-registry", "scikit-learn"], registry=ecr.registry)


@ecr.task(container_image=image)
def fit(n: int) -> float:
    return n / 3


@workflow
def wf(n: int = 9) -> float:
    return fit(n=n)
