"""Several registries per task and per namespace (issue 11 item 3).

Tasks are serialized through flytekit's own translator (what ``pyflyte package`` calls), so the
assertions are on the TaskTemplate the cluster receives; the multi-registry Secret is validated
against the official Kubernetes schemas with ``kubernetes-validate``.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import kubernetes_validate
import pytest
import yaml
from flytekit import ImageSpec, PodTemplate, map_task, task
from kubernetes.client import V1Container, V1LocalObjectReference, V1PodSpec
from pydantic import SecretStr
from test_tasks import pull_secrets, serialized

from flyte_private_registry import PrivateRegistry, cluster_objects
from flyte_private_registry.credentials import Credential
from flyte_private_registry.pull._tasks import pulled_images

A = "registry-a.example.com/ml"
B = "registry-b.example.com/vision"
C = "registry-c.example.com/tools"
PUBLIC = "ghcr.io/flyteorg/flytekit:py3.11-1.16.31"


@pytest.fixture
def registries():
    a = PrivateRegistry(A, username="u", password="p", pull_secret="a-pull")
    b = PrivateRegistry(B, username="u", password="p", pull_secret="b-pull")
    c = PrivateRegistry(C, username="u", password="p", pull_secret="c-pull")
    return a, b, c


def _template(**spec) -> PodTemplate:
    return PodTemplate(pod_spec=V1PodSpec(**{"containers": [V1Container(name="primary")], **spec}))


def test_private_base_in_one_registry_and_sidecar_in_another_get_both_secrets(registries):
    """The ImageSpec is pushed to A, built from a private base in B; the sidecar comes from C.

    The built image needs no B secret on the pod: the base's layers are inside the image pushed to
    A and the node never pulls the base by name. So the pod needs A (its image) and C (the
    sidecar), whichever registry's ``task`` decorates it. (``builder="docker-cli"`` only names the
    builder here: defining a task and get_serializable never build.)
    """
    a, b, c = registries
    base = ImageSpec(name="base", registry=b.registry, builder="docker-cli", base_image=PUBLIC)
    image = ImageSpec(name="trainer", registry=a.registry, builder="docker-cli", base_image=base)
    sidecar = _template(containers=[V1Container(name="primary"), V1Container(name="proxy", image=f"{C}/proxy:1")])

    @a.task(container_image=image, pod_template=sidecar)
    def by_a(x: int) -> int:
        return x

    @c.task(container_image=image, pod_template=sidecar)
    def by_c(x: int) -> int:
        return x

    @b.task(container_image=image, pod_template=sidecar)
    def by_b(x: int) -> int:
        return x

    for each in (by_a, by_b, by_c):
        assert pull_secrets(each) == ["a-pull", "c-pull"], each.name
    assert pulled_images(by_b) == [image, f"{C}/proxy:1"]

    # a sidecar that *does* run the B base image brings B's secret too
    runs_base = _template(containers=[V1Container(name="primary"), V1Container(name="warm", image=f"{B}/base:1")])

    @a.task(container_image=image, pod_template=runs_base)
    def warm(x: int) -> int:
        return x

    assert pull_secrets(warm) == ["a-pull", "b-pull"]


def test_a_noop_image_spec_pulls_its_private_base(registries):
    """flytekit's noop builder builds nothing and runs ``base_image`` itself: the node pulls the base from B."""
    a, _b, _c = registries
    image = ImageSpec(name="trainer", registry=a.registry, builder="noop", base_image=f"{B}/base:1")
    sidecar = _template(containers=[V1Container(name="primary"), V1Container(name="proxy", image=f"{C}/proxy:1")])

    @a.task(container_image=image, pod_template=sidecar)
    def train(x: int) -> int:
        return x

    assert pull_secrets(train) == ["b-pull", "c-pull"]
    containers = serialized(train)["k8sPod"]["podSpec"]["containers"]
    assert sorted(c["image"] for c in containers) == [f"{B}/base:1", f"{C}/proxy:1"]


def test_init_containers_bring_their_registry_secret(registries):
    a, _b, _c = registries
    template = _template(
        init_containers=[V1Container(name="fetch", image=f"{B}/fetch:2"), V1Container(name="pub", image="busybox:1")],
        image_pull_secrets=[V1LocalObjectReference(name="team-other")],
    )

    @a.task(container_image=f"{A}/trainer:v1", pod_template=template)
    def train(x: int) -> int:
        return x

    assert pull_secrets(train) == ["team-other", "a-pull", "b-pull"]
    pod = serialized(train)["k8sPod"]["podSpec"]
    assert [(c["name"], c["image"]) for c in pod["initContainers"]] == [("fetch", f"{B}/fetch:2"), ("pub", "busybox:1")]

    # attach on an existing task, a map task over it, and a public primary: the init container alone counts
    @task(container_image=PUBLIC, pod_template=template)
    def public(x: int) -> int:
        return x

    mapped = map_task(public)
    a.attach(mapped)
    assert pull_secrets(mapped) == ["team-other", "b-pull"]


def test_an_init_container_never_replaces_the_primary_image(registries):
    """flytekit only looks at ``containers`` for the primary; a same-named init container is just another image."""
    _a, b, _ = registries
    template = _template(init_containers=[V1Container(name="primary", image=f"{B}/fetch:2")])

    @b.task(container_image=f"{A}/trainer:v1", pod_template=template)
    def train(x: int) -> int:
        return x

    assert pulled_images(train) == [f"{A}/trainer:v1", f"{B}/fetch:2"]
    assert pull_secrets(train) == ["a-pull", "b-pull"]


def test_preflight_checks_every_image_of_the_pod(registries):
    """Each image is checked with every Secret the pod lists (here none exists: each is named missing)."""
    a, _, _ = registries
    template = _template(
        containers=[V1Container(name="primary"), V1Container(name="proxy", image=f"{C}/proxy:1")],
        init_containers=[V1Container(name="fetch", image=f"{B}/fetch:2")],
    )

    @a.task(container_image=f"{A}/trainer:v1", pod_template=template)
    def train(x: int) -> int:
        return x

    report = a.preflight([train], namespaces=["ml-development"], secrets={"ml-development": []})
    assert [c.image for c in report.checks] == [f"{A}/trainer:v1", f"{C}/proxy:1", f"{B}/fetch:2"]
    assert all(c.secret_names == ("a-pull", "c-pull", "b-pull") for c in report.checks)
    assert {c.status for c in report.checks} == {"missing-secret"}


class _ExpiringKeychain:
    """A short-lived source (an ECR-like token) that says when it expires."""

    def __init__(self, password: str, expires_at: datetime) -> None:
        self._credential = Credential(
            "AWS", SecretStr(password), source="ecr token (profile ci)", expires_at=expires_at
        )

    @property
    def name(self) -> str:
        return self._credential.source

    def resolve(self, resource):
        return self._credential


def test_one_secret_for_several_registries_names_each_entry(monkeypatch, canary_password):
    monkeypatch.setenv("A_TOKEN", canary_password)
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    a = PrivateRegistry(A, username="robot", password_env="A_TOKEN", pull_secret="team-pull")
    b = PrivateRegistry(B, keychains=(_ExpiringKeychain("token-" + canary_password, expires),), pull_secret="team-pull")
    objects = cluster_objects([a, b], namespaces=["ml-development"], service_account="default", allow_short_lived=True)
    documents = list(yaml.safe_load_all(objects.yaml()))
    for document in documents:
        kubernetes_validate.validate(document, "1.30", strict=True)
    secret, account = documents
    assert account["imagePullSecrets"] == [{"name": "team-pull"}]
    auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
    assert sorted(auths) == ["registry-a.example.com", "registry-b.example.com"]

    annotations = secret["metadata"]["annotations"]
    entries = json.loads(annotations["flyte-private-registry/entries"])
    assert entries == [
        {"registry": A, "host": "registry-a.example.com", "source": "env A_TOKEN", "expires": None},
        {"registry": B, "host": "registry-b.example.com", "source": "ecr token", "expires": expires.isoformat()},
    ]
    text = json.dumps(secret["metadata"])
    assert canary_password not in text and "profile ci" not in text
    assert annotations["flyte-private-registry/expires-at"] == expires.isoformat()
    assert canary_password not in repr(objects)


def test_entries_annotation_survives_apply_and_adoption(monkeypatch, canary_password):
    """The annotation sits under our prefix: apply() keeps a foreign Secret's own entries and annotations."""
    from kube_stand_in import stand_in_api

    monkeypatch.setenv("A_TOKEN", canary_password)
    a = PrivateRegistry(A, username="robot", password_env="A_TOKEN", pull_secret="team-pull")
    b = PrivateRegistry(B, username="robot", password_env="A_TOKEN", pull_secret="team-pull")
    theirs = {"auths": {"quay.io": {"auth": base64.b64encode(b"q:w").decode()}}}
    with stand_in_api({"ml-development"}) as api:
        api.put(
            "ml-development",
            "secrets",
            {
                "metadata": {"name": "team-pull", "annotations": {"owner": "platform"}},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": base64.b64encode(json.dumps(theirs).encode()).decode()},
            },
        )
        objects = cluster_objects([a, b], namespaces=["ml-development"])
        from flyte_private_registry import ClusterError

        with pytest.raises(ClusterError, match="not created by flyte-private-registry"):
            objects.apply(api.client())
        objects.apply(api.client(), adopt=True)
        stored = api.get("ml-development", "secrets", "team-pull")
    auths = json.loads(base64.b64decode(stored["data"][".dockerconfigjson"]))["auths"]
    assert sorted(auths) == ["quay.io", "registry-a.example.com", "registry-b.example.com"]
    annotations = stored["metadata"]["annotations"]
    assert annotations["owner"] == "platform"
    assert [e["registry"] for e in json.loads(annotations["flyte-private-registry/entries"])] == [A, B]
    assert canary_password not in json.dumps(stored["metadata"])


def test_expiry_is_never_later_than_now_plus_a_day_for_tokens(monkeypatch):
    """Sanity on the expiry format: ISO 8601 with offset, parseable by datetime (doctor --pod reads it back)."""
    soon = datetime.now(timezone.utc) + timedelta(hours=12)
    b = PrivateRegistry(B, keychains=(_ExpiringKeychain("t", soon),), pull_secret="b-pull")
    (secret,) = cluster_objects([b], namespaces=["ns"], allow_short_lived=True).manifests
    (entry,) = json.loads(secret["metadata"]["annotations"]["flyte-private-registry/entries"])
    assert datetime.fromisoformat(entry["expires"]) == soon
