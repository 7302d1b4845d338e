"""A workflow mixing public and private images: only the private tasks get the pull secret.

- `clean` runs on a public image: left exactly as flytekit makes it;
- `train` runs on a private ImageSpec: gets `harbor-pull`;
- `score` is a map task over a private task: the inner task's template carries the secret;
- `report` uses a public image but a private sidecar in its pod template: gets the secret too.
"""

from flytekit import ImageSpec, PodTemplate, map_task, task, workflow
from kubernetes.client import V1Container, V1PodSpec

from flyte_private_registry import PrivateRegistry

harbor = PrivateRegistry(
    "harbor.example.com/ml", username_env="HARBOR_USER", password_env="HARBOR_TOKEN", pull_secret="harbor-pull"
)
public = ImageSpec(name="cleaner", packages=["flyte-private-registry"], registry="docker.io/flyteorg-public-example")
# task modules import the library, so images running them must contain it
private = ImageSpec(name="trainer", packages=["flyte-private-registry"], registry=harbor.registry)

sidecar = PodTemplate(
    primary_container_name="primary",
    pod_spec=V1PodSpec(
        containers=[V1Container(name="primary"), V1Container(name="metrics", image="harbor.example.com/ml/metrics:1.2")]
    ),
)


@task(container_image=public)
def clean(n: int) -> list[int]:
    return list(range(n))


@harbor.task(container_image=private)
def train(xs: list[int]) -> int:
    return sum(xs)


@harbor.task(container_image=private)
def score_one(x: int) -> int:
    return x * 2


@harbor.attach
@task(pod_template=sidecar)
def report(total: int) -> str:
    return f"total={total}"


@workflow
def wf(n: int = 4) -> str:
    xs = clean(n=n)
    scores = map_task(score_one)(x=xs)
    return report(total=train(xs=scores))
