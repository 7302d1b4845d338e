"""``@reg.task``, ``reg.pod_template``, ``reg.attach``: pull secrets on tasks, merged with what the user wrote.

Serialized through flytekit's own translator (what ``pyflyte package`` calls), so the assertions
are on the TaskTemplate the cluster receives. tests/pull/test_tasks_pyflyte.py does the same end to end.
"""

import json
import subprocess
import sys
import textwrap
from collections import OrderedDict

import pytest
from flytekit import ContainerTask, ImageSpec, PodTemplate, dynamic, map_task, task
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable
from google.protobuf.json_format import MessageToDict
from kubernetes.client import (
    V1Container,
    V1EmptyDirVolumeSource,
    V1LocalObjectReference,
    V1PodSpec,
    V1Toleration,
    V1Volume,
    V1VolumeMount,
)

from flyte_private_registry import ConfigurationError, PrivateRegistry

HARBOR = "harbor.example.com/ml"
PUBLIC = "ghcr.io/flyteorg/flytekit:py3.11-1.16.31"
SETTINGS = SerializationSettings(image_config=ImageConfig.from_images(PUBLIC, {"trainer": f"{HARBOR}/trainer:v1"}))


@pytest.fixture
def reg():
    return PrivateRegistry(HARBOR, username="alice", password_env="HARBOR_TOKEN", pull_secret="harbor-pull")


def serialized(entity) -> dict:
    """The TaskTemplate as JSON, the way it is registered (id blanked so two tasks compare)."""
    template = get_serializable(OrderedDict(), SETTINGS, entity).template.to_flyte_idl()
    template.ClearField("id")
    return MessageToDict(template)


def pull_secrets(entity) -> list[str] | None:
    pod = serialized(entity).get("k8sPod")
    if pod is None:
        return None
    return [ref["name"] for ref in pod["podSpec"].get("imagePullSecrets", [])]


def user_template() -> PodTemplate:
    return PodTemplate(
        pod_spec=V1PodSpec(
            containers=[
                V1Container(name="primary", volume_mounts=[V1VolumeMount(name="scratch", mount_path="/scratch")]),
                V1Container(name="metrics", image="ghcr.io/acme/metrics:1"),
            ],
            volumes=[V1Volume(name="scratch", empty_dir=V1EmptyDirVolumeSource())],
            tolerations=[V1Toleration(key="gpu", operator="Exists", effect="NoSchedule")],
            image_pull_secrets=[V1LocalObjectReference(name="team-other")],
        ),
        labels={"team": "ml"},
        annotations={"owner": "ml@example.com"},
    )


def test_private_image_spec_gets_the_secret(reg):
    image = ImageSpec(name="trainer", registry=HARBOR, builder="noop", base_image=PUBLIC)

    @reg.task(container_image=image, retries=2)
    def train(x: int) -> int:
        return x

    assert pull_secrets(train) == ["harbor-pull"]
    assert train.metadata.retries == 2  # flytekit's own arguments pass through


def test_merge_keeps_everything_the_user_wrote(reg):
    base = user_template()
    before = json.dumps(MessageToDict(_k8s(base)), sort_keys=True)

    @reg.task(container_image=f"{HARBOR}/trainer:v1", pod_template=base)
    def train(x: int) -> int:
        return x

    pod = serialized(train)["k8sPod"]
    spec = pod["podSpec"]
    assert [c["name"] for c in spec["containers"]] == ["primary", "metrics"]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["imagePullSecrets"] == [{"name": "team-other"}, {"name": "harbor-pull"}]
    assert pod["metadata"] == {"labels": {"team": "ml"}, "annotations": {"owner": "ml@example.com"}}
    # the user's template object is not modified (it may be shared with public tasks)
    assert json.dumps(MessageToDict(_k8s(base)), sort_keys=True) == before


def _k8s(template: PodTemplate):
    from flytekit.models.task import K8sPod

    return K8sPod.from_pod_template(template).to_flyte_idl()


def test_no_duplicates_and_idempotent_attach(reg):
    @reg.task(container_image=f"{HARBOR}/trainer:v1", pod_template=reg.pod_template(user_template()))
    def train(x: int) -> int:
        return x

    assert pull_secrets(train) == ["team-other", "harbor-pull"]
    template = train.pod_template
    assert reg.attach(reg.attach(train)) is train
    assert train.pod_template is template
    assert pull_secrets(train) == ["team-other", "harbor-pull"]


def test_public_tasks_are_left_exactly_as_flytekit_makes_them(reg):
    @task(container_image=PUBLIC, retries=1)
    def plain(x: int) -> int:
        return x

    @reg.task(container_image=PUBLIC, retries=1)
    def decorated(x: int) -> int:
        return x

    @task(container_image=PUBLIC, pod_template=user_template())
    def with_template(x: int) -> int:
        return x

    template = with_template.pod_template
    assert decorated.pod_template is None
    assert reg.attach(plain) is plain and plain.pod_template is None
    assert reg.attach(with_template).pod_template is template
    same = json.dumps(serialized(decorated)).replace("decorated", "plain")
    assert same == json.dumps(serialized(plain))
    assert "k8sPod" not in serialized(plain)


def test_default_image_is_assumed_in_the_registry_for_reg_task_only(reg):
    """Without container_image the image is --image's; only known at serialization, so reg.task assumes reg."""

    @reg.task
    def on_default(x: int) -> int:
        return x

    @reg.task(container_image="{{.image.trainer.fqn}}:{{.image.trainer.version}}")
    def on_named(x: int) -> int:
        return x

    assert pull_secrets(on_default) == ["harbor-pull"]
    assert pull_secrets(on_named) == ["harbor-pull"]


def test_private_sidecar_on_a_public_task(reg):
    template = PodTemplate(
        pod_spec=V1PodSpec(containers=[V1Container(name="proxy", image=f"{HARBOR}/proxy:2")]),
        primary_container_name="main",
    )

    @task(container_image=PUBLIC, pod_template=template)
    def public_with_private_sidecar(x: int) -> int:
        return x

    reg.attach(public_with_private_sidecar)
    assert pull_secrets(public_with_private_sidecar) == ["harbor-pull"]
    containers = serialized(public_with_private_sidecar)["k8sPod"]["podSpec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("proxy", f"{HARBOR}/proxy:2"), ("main", PUBLIC)]


def test_primary_container_image_in_the_template_wins(reg):
    """flytekit runs the template's primary image when it names one; that is what we must cover."""
    template = PodTemplate(pod_spec=V1PodSpec(containers=[V1Container(name="primary", image=f"{HARBOR}/x:1")]))

    @reg.task(container_image=PUBLIC, pod_template=template)
    def overridden(x: int) -> int:
        return x

    assert pull_secrets(overridden) == ["harbor-pull"]


def test_each_registry_brings_its_own_secret(reg):
    vision = PrivateRegistry("harbor.example.com/vision", username="v", password="p", pull_secret="vision-pull")
    template = PodTemplate(pod_spec=V1PodSpec(containers=[V1Container(name="side", image=f"{vision.registry}/s:1")]))

    @reg.task(container_image=f"{HARBOR}/trainer:v1", pod_template=template)
    def both(x: int) -> int:
        return x

    assert pull_secrets(both) == ["harbor-pull", "vision-pull"]


def test_map_task_uses_the_mapped_task_template(reg):
    @reg.task(container_image=f"{HARBOR}/trainer:v1")
    def square(x: int) -> int:
        return x * x

    @task(container_image=f"{HARBOR}/trainer:v1")
    def cube(x: int) -> int:
        return x**3

    assert pull_secrets(map_task(square)) == ["harbor-pull"]
    mapped = map_task(cube)
    assert pull_secrets(mapped) is None
    assert reg.attach(mapped) is mapped
    assert pull_secrets(mapped) == ["harbor-pull"]


def test_dynamic_both_ways(reg):
    @reg.dynamic(container_image=f"{HARBOR}/trainer:v1")
    def fan_out(n: int) -> int:
        return n

    @reg.attach
    @dynamic(container_image=f"{HARBOR}/trainer:v1")
    def fan_out_attached(n: int) -> int:
        return n

    assert pull_secrets(fan_out) == pull_secrets(fan_out_attached) == ["harbor-pull"]
    assert fan_out.execution_mode == fan_out.ExecutionBehavior.DYNAMIC


def test_container_task_with_an_image_string(reg):
    tool = ContainerTask(name="tool", image=f"{HARBOR}/tool:3", command=["echo", "hi"])
    public = ContainerTask(name="public-tool", image="busybox:1.36", command=["echo", "hi"])
    assert reg.attach(tool) is tool
    assert pull_secrets(tool) == ["harbor-pull"]
    assert serialized(tool)["k8sPod"]["podSpec"]["containers"][0]["image"] == f"{HARBOR}/tool:3"
    reg.attach(public)
    assert pull_secrets(public) is None


def test_pod_template_name_mode(reg):
    @reg.task(container_image=f"{HARBOR}/trainer:v1", via_pod_template_name="flyte-pull")
    def by_name(x: int) -> int:
        return x

    template = serialized(by_name)
    assert template["metadata"]["podTemplateName"] == "flyte-pull"
    assert "k8sPod" not in template  # the cluster's PodTemplate carries the secret

    @task(container_image=f"{HARBOR}/trainer:v1")
    def later(x: int) -> int:
        return x

    reg.attach(map_task(later), via_pod_template_name="flyte-pull")
    assert later.metadata.pod_template_name == "flyte-pull"

    with pytest.raises(ConfigurationError, match="name two PodTemplates"):

        @reg.task(container_image=f"{HARBOR}/t:1", pod_template_name="gpu", via_pod_template_name="flyte-pull")
        def clash(x: int) -> int:
            return x


def test_the_secret_is_part_of_the_registration_version(reg):
    """pod_template.version_hash() feeds the version: a changed secret registers a new version."""

    @task(container_image=f"{HARBOR}/trainer:v1", pod_template=reg.pod_template())
    def one(x: int) -> int:
        return x

    other = PrivateRegistry(HARBOR, username="alice", password="pw", pull_secret="harbor-pull-v2")
    assert one.pod_template.version_hash() != other.pod_template().version_hash()
    assert reg.pod_template().version_hash() == one.pod_template.version_hash()


def test_derived_secret_name_is_a_valid_kubernetes_name():
    assert PrivateRegistry("127.0.0.1:5000/Team/ML").pull_secret_name == "127.0.0.1-5000-team-ml-pull"
    assert PrivateRegistry("docker.io/acme").pull_secret_name == "docker.io-acme-pull"


def test_attach_refuses_what_has_no_pod(reg):
    from flytekit import workflow

    @workflow
    def wf() -> None:
        pass

    with pytest.raises(TypeError, match="only container tasks"):
        reg.attach(wf)


def _run(tmp_path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_importing_the_library_does_not_import_kubernetes(tmp_path):
    result = _run(
        tmp_path,
        """
        import sys
        import flytekit
        from flyte_private_registry import PrivateRegistry, cluster_objects
        reg = PrivateRegistry("harbor.example.com/ml", username="a", password="b")
        reg.pull_secret_name
        reg.cluster_objects(namespaces=["ns"]).yaml()
        print("kubernetes" in sys.modules)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_kubernetes_the_error_names_the_extra(tmp_path):
    result = _run(
        tmp_path,
        """
        import sys
        sys.modules["kubernetes"] = None  # as if the extra were not installed
        from flytekit import task
        from flyte_private_registry import MissingExtra, PrivateRegistry
        reg = PrivateRegistry("harbor.example.com/ml", username="a", password="b")

        @task(container_image="python:3.11")
        def public(x: int) -> int:
            return x

        assert reg.attach(public) is public  # nothing to add: no kubernetes needed
        try:
            @reg.task(container_image="harbor.example.com/ml/app:1")
            def private(x: int) -> int:
                return x
        except MissingExtra as err:
            assert isinstance(err, ImportError)
            print(err)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'flyte-private-registry[kubernetes]'" in result.stdout


def test_every_kubernetes_feature_raises_the_same_missing_extra(tmp_path):
    """One import guard: a task's PodTemplate, apply() and the pre-flight's cluster read say the same."""
    result = _run(
        tmp_path,
        """
        import sys
        sys.modules["kubernetes"] = None  # as if it were not installed
        from flyte_private_registry import MissingExtra, PrivateRegistry
        from flyte_private_registry.pull._preflight import KubernetesSecrets
        reg = PrivateRegistry("harbor.example.com/ml", username="a", password="b")
        objects = reg.cluster_objects(namespaces=["ns"])
        messages = []
        for attempt in (
            lambda: reg.pod_template(),
            lambda: objects.apply(),
            lambda: objects.apply(api_client=object()),
            lambda: KubernetesSecrets(),
        ):
            try:
                attempt()
            except MissingExtra as err:
                messages.append(str(err))
        assert len(messages) == 4, messages
        assert len(set(messages)) == 1, messages
        print(messages[0])
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'flyte-private-registry[kubernetes]'" in result.stdout
    assert "also in the task image" in result.stdout
