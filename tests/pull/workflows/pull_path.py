"""Every task that runs a private image carries its registry's pull secret; public tasks carry none.

The registry host comes from ``PULL_TEST_REGISTRY`` (the test rig's registry) and alice's password
from ``PULL_TEST_PASSWORD``: the library needs it only to check and push the ImageSpec image while
``pyflyte`` serializes; defining the tasks needs no credential at all.
"""

import os

from flytekit import ContainerTask, ImageSpec, PodTemplate, dynamic, map_task, task, workflow
from kubernetes.client import V1Container, V1LocalObjectReference, V1PodSpec, V1Toleration

from flyte_private_registry import PrivateRegistry

HOST = os.environ["PULL_TEST_REGISTRY"]
PUBLIC = "ghcr.io/flyteorg/flytekit:py3.11-1.16.31"

# builder="docker-cli": the offline builder (flytekit's default needs BuildKit and the internet)
ml = PrivateRegistry(
    f"{HOST}/ml", username="alice", password_env="PULL_TEST_PASSWORD", pull_secret="ml-pull", builder="docker-cli"
)
vision = PrivateRegistry(
    f"{HOST}/vision", username="alice", password_env="PULL_TEST_PASSWORD", pull_secret="vision-pull"
)

image = ImageSpec(
    name=os.environ.get("PULL_TEST_IMAGE", "trainer"), registry=ml.registry, copy=["workflows/__init__.py"]
)

# A team template shared by several tasks: a private sidecar, a toleration, labels and a pull secret of its own.
shared = PodTemplate(
    pod_spec=V1PodSpec(
        containers=[V1Container(name="primary"), V1Container(name="proxy", image=f"{vision.registry}/proxy:1")],
        tolerations=[V1Toleration(key="gpu", operator="Exists", effect="NoSchedule")],
        image_pull_secrets=[V1LocalObjectReference(name="team-other")],
    ),
    labels={"team": "ml"},
    annotations={"owner": "ml@example.com"},
)


@ml.task(container_image=image)
def train(x: int) -> int:
    return x + 1


@ml.task(container_image=f"{ml.registry}/tool:v1")
def evaluate(x: int) -> int:
    return x * 2


@ml.task
def on_default_image(x: int) -> int:
    """No container_image: runs pyflyte's --image, which the test points at the ml registry."""
    return x


@ml.task(container_image=PUBLIC)
def publish(x: int) -> int:
    """A public image: left exactly as flytekit makes it, even under @ml.task."""
    return x


@task(container_image=PUBLIC)
def plain_public(x: int) -> int:
    return x


@ml.task(container_image=PUBLIC, pod_template=shared)
def with_private_sidecar(x: int) -> int:
    return x


@ml.task(container_image=image, pod_template=shared)
def train_with_sidecar(x: int) -> int:
    return x


@ml.task(container_image=image)
def square(x: int) -> int:
    return x * x


@ml.dynamic(container_image=image)
def fan_out(n: int) -> list[int]:
    return [square(x=i) for i in range(n)]


@ml.attach
@dynamic(container_image=f"{ml.registry}/tool:v1")
def fan_out_attached(n: int) -> int:
    return square(x=n)


tool = ml.attach(ContainerTask(name="ml-tool", image=f"{ml.registry}/tool:v1", command=["echo", "hi"]))
public_tool = ContainerTask(name="public-tool", image="busybox:1.36", command=["echo", "hi"])


@ml.task(container_image=image, via_pod_template_name="flyte-pull")
def by_cluster_template(x: int) -> int:
    """References the cluster's PodTemplate 'flyte-pull' (holding ml-pull) instead of embedding it."""
    return x


@workflow
def pipeline(x: int = 2) -> int:
    y = train(x=evaluate(x=on_default_image(x=x)))
    z = publish(x=plain_public(x=with_private_sidecar(x=train_with_sidecar(x=y))))
    map_task(square)(x=fan_out(n=z))
    tool()
    public_tool()
    return by_cluster_template(x=fan_out_attached(n=z))
