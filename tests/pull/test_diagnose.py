"""``diagnose_pod``: each cause of a pod stuck in ErrImagePull/ImagePullBackOff, reproduced (issue 11 item 4).

Real parts: the htpasswd registry of the test rig (an image pushed with the docker CLI) answers
every login and manifest HEAD; the pod, its Secrets, ServiceAccount and Events are read through the
real ``kubernetes`` client from the API stand-in (tests/kube_stand_in.py: an HTTP server, not a
cluster; no kubelet runs here, so the pod's status is written the way the kubelet writes it).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from helpers import docker_push
from kube_stand_in import stand_in_api
from pydantic import SecretStr

from flyte_private_registry import ClusterError, PrivateRegistry, cluster_objects, diagnose_pod
from flyte_private_registry.credentials import Credential

pytestmark = pytest.mark.integration

NS = "ml-development"


@pytest.fixture(scope="module")
def pushed(docker_engine, basic_registry, registry_users, busybox_image, tmp_path_factory):
    image = basic_registry.reference(f"ml/app-{uuid.uuid4().hex[:6]}", "v1")
    docker_push(
        docker_engine, busybox_image, image, "alice", registry_users.alice_password, tmp_path_factory.mktemp("s")
    )
    return image


@pytest.fixture
def ml(basic_registry, registry_users):
    return PrivateRegistry(
        f"{basic_registry.host}/ml", username="bob", password=registry_users.bob_password, pull_secret="ml-pull"
    )


@pytest.fixture
def api():
    with stand_in_api({NS}) as server:
        yield server


def jwt(exp: datetime) -> str:
    """A JWT-shaped token (header.claims.signature) expiring at ``exp``; the registry will refuse it."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256'})}.{part({'exp': int(exp.timestamp())})}.c2ln"


def add_pod(
    api, name: str, image: str, secrets=("ml-pull",), *, init: bool = False, message: str = "", reason="ErrImagePull"
):
    containers = [{"name": "primary", "image": "ghcr.io/flyteorg/flytekit:py3.11-1.16.31"}]
    statuses = [
        {"name": "primary", "image": containers[0]["image"], "ready": True, "restartCount": 0, "state": {"running": {}}}
    ]
    stuck = {
        "name": "fetch" if init else "primary",
        "image": image,
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason, **({"message": message} if message else {})}},
    }
    spec: dict = {"serviceAccountName": "default", "containers": containers}
    status: dict = {"phase": "Pending"}
    if init:
        spec["initContainers"] = [{"name": "fetch", "image": image}]
        status["initContainerStatuses"] = [stuck]
        status["containerStatuses"] = statuses
    else:
        containers[0]["image"] = image
        status["containerStatuses"] = [stuck]
    if secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in secrets]
    api.put(NS, "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec, "status": status})
    api.put(
        NS,
        "events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.1"},
            "type": "Warning",
            "reason": "Failed",
            "involvedObject": {"kind": "Pod", "name": name, "namespace": NS},
            "message": f'Failed to pull image "{image}": {message or "pull access denied"}',
        },
    )


def apply_secret(api, *registries, allow_short_lived=False):
    cluster_objects(list(registries), namespaces=[NS], allow_short_lived=allow_short_lived).apply(api.client())


def only(diagnosis):
    (image,) = diagnosis.images
    text = str(diagnosis)
    print(text)
    return image, text


def test_no_secret_on_the_pod_or_its_account(api, pushed, ml):
    api.put(NS, "serviceaccounts", {"metadata": {"name": "default"}})
    add_pod(api, "p1", pushed, secrets=())
    image, text = only(diagnose_pod(NS, "p1", api.client()))
    assert image.cause == "no-secret" and "lists none" in image.detail
    assert "@reg.task / reg.attach" in image.fix and "--service-account default" in image.fix
    assert "cause: no-secret" in text and "fix:" in text

    api.put(NS, "serviceaccounts", {"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "ml-pull"}]})
    image, _ = only(diagnose_pod(NS, "p1", api.client()))
    assert image.cause == "no-secret" and "created before" in image.detail and "delete the pod" in image.fix


def test_secret_missing_in_the_namespace(api, pushed, ml):
    add_pod(api, "p2", pushed)
    image, _ = only(diagnose_pod(NS, "p2", api.client()))
    assert image.cause == "missing-secret" and f"Secret ml-pull does not exist in namespace {NS}" in image.detail
    assert image.fix.startswith(f"`flyte-private-registry secret apply {ml.registry} -n {NS}`")


def test_no_entry_for_the_host(api, pushed, ml):
    other = PrivateRegistry("harbor.example.com/ml", username="bob", password="x", pull_secret="ml-pull")
    apply_secret(api, other)
    add_pod(api, "p3", pushed)
    image, _ = only(diagnose_pod(NS, "p3", api.client()))
    assert image.cause == "no-entry" and "'harbor.example.com'" in image.detail and "anonymously" in image.detail


def test_refused_credential(api, pushed, ml, basic_registry, canary_password):
    wrong = PrivateRegistry(ml.prefix, username="alice", password="wrong-" + canary_password, pull_secret="ml-pull")
    apply_secret(api, wrong)
    add_pod(api, "p4", pushed, message="401 Unauthorized")
    diagnosis = diagnose_pod(NS, "p4", api.client())
    image, text = only(diagnosis)
    assert image.cause == "refused" and f"registry {basic_registry.host} refused user 'alice'" in image.detail
    assert "--pull-only" in image.fix
    assert canary_password not in text and canary_password not in json.dumps(diagnosis.to_dict())


class _Expired:
    def __init__(self, password: str, when: datetime) -> None:
        self.credential = Credential("alice", SecretStr(password), source="ecr token", expires_at=when)
        self.name = "ecr token"

    def resolve(self, resource):
        return self.credential


def test_expired_token_from_the_entries_annotation(api, pushed, ml, canary_password):
    """A short-lived token rendered without a refresher, now past its expiry: the registry refuses it."""
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    token = PrivateRegistry(ml.prefix, keychains=(_Expired("stale-" + canary_password, past),), pull_secret="ml-pull")
    apply_secret(api, token, allow_short_lived=True)
    add_pod(api, "p5", pushed)
    image, text = only(diagnose_pod(NS, "p5", api.client()))
    assert image.cause == "expired" and f"expired at {past.isoformat()}" in image.detail
    assert "from ecr token" in image.detail and "entries annotation" in image.detail and "--refresher" in image.fix
    assert canary_password not in text


def test_expired_token_from_its_jwt_exp(api, pushed, ml):
    past = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    token = PrivateRegistry(ml.prefix, username="alice", password=jwt(past), pull_secret="ml-pull")
    apply_secret(api, token)
    add_pod(api, "p6", pushed)
    image, _ = only(diagnose_pod(NS, "p6", api.client()))
    assert image.cause == "expired" and "(by the token's JWT exp)" in image.detail and past.isoformat() in image.detail

    # a JWT still valid is a plain refusal, not an expiry
    api.objects.clear()
    fresh = PrivateRegistry(ml.prefix, username="alice", password=jwt(past + timedelta(days=1)), pull_secret="ml-pull")
    apply_secret(api, fresh)
    add_pod(api, "p6", pushed)
    image, _ = only(diagnose_pod(NS, "p6", api.client()))
    assert image.cause == "refused"


def test_tag_or_digest_the_registry_does_not_have(api, pushed, ml):
    apply_secret(api, ml)
    missing = pushed.rsplit(":", 1)[0] + ":no-such-tag"
    add_pod(api, "p7", missing, message=f"manifest for {missing} not found")
    image, _ = only(diagnose_pod(NS, "p7", api.client()))
    assert image.cause == "image-missing" and "the tag no-such-tag is not in the registry" in image.detail

    by_digest = pushed.rsplit(":", 1)[0] + "@sha256:" + "0" * 64
    add_pod(api, "p8", by_digest)
    image, _ = only(diagnose_pod(NS, "p8", api.client()))
    assert image.cause == "image-missing" and f"{by_digest.split('/', 1)[1]} does not exist" in image.detail


def test_platform_the_image_does_not_have(api, pushed, ml):
    apply_secret(api, ml)
    message = "no matching manifest for linux/arm64 in the manifest list entries"
    add_pod(api, "p9", pushed, message=message)
    image, _ = only(diagnose_pod(NS, "p9", api.client()))
    assert image.cause == "platform-missing" and "(linux/arm64)" in image.detail and "can pull" in image.detail
    assert "platform=" in image.fix


def test_a_stuck_init_container_and_events_as_the_message(api, pushed, ml):
    """ImagePullBackOff often has no message; the namespace's Events carry the kubelet's."""
    add_pod(api, "p10", pushed, init=True, reason="ImagePullBackOff")
    diagnosis = diagnose_pod(NS, "p10", api.client())
    image, text = only(diagnosis)
    assert image.init and image.container == "fetch" and image.cause == "missing-secret"
    assert image.message.startswith(f'Failed to pull image "{pushed}"')
    assert "init container fetch" in text and diagnosis.events


def test_a_healthy_pod_and_a_missing_pod(api, pushed, ml):
    api.put(
        NS,
        "pods",
        {
            "metadata": {"name": "fine"},
            "spec": {"containers": [{"name": "primary", "image": pushed}]},
            "status": {"containerStatuses": [{"name": "primary", "state": {"running": {}}}]},
        },
    )
    diagnosis = diagnose_pod(NS, "fine", api.client())
    assert diagnosis.ok and "no container is waiting on an image pull" in str(diagnosis)
    with pytest.raises(ClusterError, match=f"pod {NS}/nope does not exist"):
        diagnose_pod(NS, "nope", api.client())
