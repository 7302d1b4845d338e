"""``@reg.task`` does not import ``kubernetes``; serializing its task gives exactly the eager template's bytes.

The pod spec behind ``@reg.task``/``reg.pod_template``/``reg.attach`` is built when flytekit first
reads it (serialization). These tests prove both halves: a module of ``@reg.task`` tasks imports
(and runs) without ``kubernetes``, and its serialized TaskTemplate, version hash included, is
byte-identical to the one a hand-built flytekit ``PodTemplate`` with the same secrets gives.
"""

import copy
import dataclasses
import subprocess
import sys
import textwrap
from collections import OrderedDict

import pytest
from flytekit import ContainerTask, PodTemplate, map_task, task
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable
from kubernetes.client import V1Container, V1LocalObjectReference, V1PodSpec, V1Toleration

from flyte_private_registry import PrivateRegistry
from flyte_private_registry.pull._tasks import DeferredPodTemplate

HARBOR = "harbor.example.com/ml"
PUBLIC = "ghcr.io/flyteorg/flytekit:py3.11-1.16.31"
IMAGE = f"{HARBOR}/trainer:v1"
SETTINGS = SerializationSettings(image_config=ImageConfig.from_images(PUBLIC), version="v1")


@pytest.fixture
def reg():
    return PrivateRegistry(HARBOR, username="alice", password_env="HARBOR_TOKEN", pull_secret="harbor-pull")


def template_bytes(entity) -> bytes:
    template = get_serializable(OrderedDict(), SETTINGS, entity).template
    return template.to_flyte_idl().SerializeToString(deterministic=True)


def spec(*secrets: str, containers=None, tolerations=None) -> V1PodSpec:
    return V1PodSpec(
        containers=containers or [],
        tolerations=tolerations,
        image_pull_secrets=[V1LocalObjectReference(name=s) for s in secrets] or None,
    )


def double(x: int) -> int:
    return x * 2


def team_template() -> PodTemplate:
    return PodTemplate(
        pod_spec=spec(
            "team-other",
            containers=[V1Container(name="primary"), V1Container(name="proxy", image="ghcr.io/acme/proxy:1")],
            tolerations=[V1Toleration(key="gpu", operator="Exists", effect="NoSchedule")],
        ),
        labels={"team": "ml"},
        annotations={"owner": "ml@example.com"},
    )


def _run(tmp_path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_a_module_of_reg_tasks_imports_and_runs_without_kubernetes(tmp_path):
    tasks = "\n".join(
        f"@reg.task(container_image='{IMAGE}', retries=1)\ndef t{i}(x: int) -> int:\n    return x + {i}\n"
        for i in range(20)
    )
    (tmp_path / "many.py").write_text(
        "from flyte_private_registry import PrivateRegistry\n"
        f"reg = PrivateRegistry('{HARBOR}', username='a', password='b', pull_secret='harbor-pull')\n"
        "from flytekit import ContainerTask\n"
        f"tool = reg.attach(ContainerTask(name='tool', image='{HARBOR}/tool:1', command=['x']))\n" + tasks
    )
    result = _run(
        tmp_path,
        """
        import json, sys
        from collections import OrderedDict
        import many
        imported = "kubernetes" in sys.modules
        ran = many.t3(x=1)  # running a task (what the container does next) reads no pod spec either
        after_run = "kubernetes" in sys.modules
        from flytekit.configuration import ImageConfig, SerializationSettings
        from flytekit.tools.translator import get_serializable
        from google.protobuf.json_format import MessageToDict
        settings = SerializationSettings(image_config=ImageConfig.from_images("python:3.11"))
        secrets = []
        for entity in (many.t0, many.t19, many.tool):
            pod = MessageToDict(get_serializable(OrderedDict(), settings, entity).template.to_flyte_idl())["k8sPod"]
            secrets.append([ref["name"] for ref in pod["podSpec"]["imagePullSecrets"]])
        print(json.dumps([imported, ran, after_run, "kubernetes" in sys.modules, secrets]))
        """,
    )
    assert result.returncode == 0, result.stderr
    imported, ran, after_run, serialized, secrets = __import__("json").loads(result.stdout)
    assert (imported, ran, after_run) == (False, 4, False)
    assert serialized is True  # the serializer is what imports it
    assert secrets == [["harbor-pull"]] * 3


@pytest.mark.parametrize("case", ["new", "user_base", "chained", "already_listed"])
def test_serialized_task_is_byte_identical_to_a_hand_built_pod_template(reg, case):
    vision = PrivateRegistry("harbor.example.com/vision", username="v", password="p", pull_secret="vision-pull")
    if case == "new":
        ours = reg.task(container_image=IMAGE)(double)
        hand = PodTemplate(pod_spec=spec("harbor-pull"))
    elif case == "user_base":
        ours = reg.task(container_image=IMAGE, pod_template=team_template())(double)
        hand = team_template()
        hand.pod_spec.image_pull_secrets.append(V1LocalObjectReference(name="harbor-pull"))
    elif case == "chained":
        ours = reg.task(container_image=IMAGE, pod_template=vision.pod_template())(double)
        hand = PodTemplate(pod_spec=spec("vision-pull", "harbor-pull"))
    else:
        ours = reg.task(container_image=IMAGE, pod_template=reg.pod_template(reg.pod_template()))(double)
        hand = PodTemplate(pod_spec=spec("harbor-pull"))
    assert isinstance(ours.pod_template, DeferredPodTemplate) and not ours.pod_template.built
    hand_task = task(container_image=IMAGE, pod_template=hand)(double)
    assert template_bytes(ours) == template_bytes(hand_task)
    assert ours.pod_template.version_hash() == hand.version_hash()
    assert ours.pod_template == hand and hand == ours.pod_template


def test_attach_map_task_and_container_task_are_byte_identical(reg):
    mapped = reg.attach(map_task(task(container_image=IMAGE)(double)))
    hand_mapped = map_task(task(container_image=IMAGE, pod_template=PodTemplate(pod_spec=spec("harbor-pull")))(double))
    assert template_bytes(mapped) == template_bytes(hand_mapped)

    tool = reg.attach(ContainerTask(name="tool", image=f"{HARBOR}/tool:3", command=["echo"]))
    hand_tool = ContainerTask(
        name="tool", image=f"{HARBOR}/tool:3", command=["echo"], pod_template=PodTemplate(pod_spec=spec("harbor-pull"))
    )
    assert not tool.pod_template.built
    assert template_bytes(tool) == template_bytes(hand_tool)


def test_the_deferred_template_behaves_like_a_pod_template(reg):
    base = team_template()
    template = reg.pod_template(base)
    base.pod_spec.tolerations = None  # later changes to the user's template do not leak in
    base.labels["team"] = "changed"
    twin = copy.deepcopy(template)
    assert not template.built and not twin.built
    assert [s.name for s in twin.pod_spec.image_pull_secrets] == ["team-other", "harbor-pull"]
    assert twin.pod_spec.tolerations[0].key == "gpu" and twin.labels == {"team": "ml"}
    relabelled = dataclasses.replace(template, labels={"team": "x"})
    assert relabelled.pod_spec.image_pull_secrets == template.pod_spec.image_pull_secrets
    template.pod_spec = None  # an explicit assignment wins, as on PodTemplate
    assert template.pod_spec is None
    with pytest.raises(Exception, match="primary container name"):
        DeferredPodTemplate(primary_container_name="")
