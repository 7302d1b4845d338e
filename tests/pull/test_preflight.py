"""Pre-flight against real registries: Secret present and typed, entry matches, pull login works, tag exists.

Secrets are passed as objects (there is no cluster here); one test reads them through the
``kubernetes`` client from the API stand-in (tests/kube_stand_in.py, an HTTP fake, not a cluster).
"""

import copy
import uuid

import pytest
from flytekit import PodTemplate
from helpers import docker_push
from kube_stand_in import stand_in_api
from kubernetes.client import V1Container, V1LocalObjectReference, V1PodSpec

from flyte_private_registry import PreflightError, PrivateRegistry, preflight

pytestmark = pytest.mark.integration

NAMESPACES = ["ml-development", "ml-staging", "ml-production"]


@pytest.fixture(scope="module")
def pushed(docker_engine, basic_registry, token_registry, registry_users, busybox_image, tmp_path_factory):
    """One image in each registry (pushed with the plain docker CLI)."""
    suffix = uuid.uuid4().hex[:6]
    images = {}
    for key, registry in (("basic", basic_registry), ("token", token_registry)):
        image = registry.reference(f"ml/app-{suffix}", "v1")
        seed = tmp_path_factory.mktemp(f"seed-{key}")
        docker_push(docker_engine, busybox_image, image, "alice", registry_users.alice_password, seed)
        images[key] = image
    return images


@pytest.fixture
def ml(basic_registry, registry_users):
    return PrivateRegistry(
        f"{basic_registry.host}/ml", username="bob", password=registry_users.bob_password, pull_secret="ml-pull"
    )


def by_namespace(objects) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for manifest in objects.manifests:
        found.setdefault(manifest["metadata"]["namespace"], []).append(manifest)
    return found


def test_every_namespace_can_pull(ml, pushed):
    secrets = by_namespace(ml.cluster_objects(namespaces=NAMESPACES))
    report = ml.preflight([pushed["basic"]], namespaces=NAMESPACES, secrets=secrets)
    assert report.ok, str(report)
    assert [c.namespace for c in report.checks] == NAMESPACES
    assert all(c.status == "ok" and "can pull ml/app-" in c.detail and "sha256:" in c.detail for c in report.checks)
    assert "Secret ml-pull entry" in report.checks[0].detail and "user 'bob'" in report.checks[0].detail
    report.raise_for_problems()


def test_each_problem_is_named(ml, pushed, basic_registry):
    secrets = by_namespace(ml.cluster_objects(namespaces=NAMESPACES))
    opaque = copy.deepcopy(secrets["ml-staging"][0])
    opaque["type"] = "Opaque"
    foreign = PrivateRegistry("harbor.example.com/ml", username="bob", password="x", pull_secret="ml-pull")
    wrong = PrivateRegistry(ml.prefix, username="bob", password="wrong-password", pull_secret="ml-pull")
    cases = {
        "missing": [],
        "opaque": [opaque],
        "foreign": foreign.cluster_objects(namespaces=["foreign"]).manifests,
        "wrong": wrong.cluster_objects(namespaces=["wrong"]).manifests,
        "good": secrets["ml-development"],
    }
    missing_tag = pushed["basic"].rsplit(":", 1)[0] + ":no-such-tag"
    report = ml.preflight([pushed["basic"], missing_tag], namespaces=list(cases), secrets=cases)
    verdicts = {(c.namespace, c.image == missing_tag): c for c in report.checks}
    assert verdicts[("missing", False)].status == "missing-secret"
    assert "Secret ml-pull does not exist in namespace missing" in verdicts[("missing", False)].detail
    assert verdicts[("opaque", False)].status == "wrong-type"
    assert "type 'Opaque'" in verdicts[("opaque", False)].detail
    assert verdicts[("foreign", False)].status == "no-entry"
    assert "'harbor.example.com'" in verdicts[("foreign", False)].detail
    assert verdicts[("wrong", False)].status == "unauthorized"
    assert f"registry {basic_registry.host} refused user 'bob'" in verdicts[("wrong", False)].detail
    assert verdicts[("good", False)].ok
    assert verdicts[("good", True)].status == "image-missing"
    assert "no-such-tag does not exist" in verdicts[("good", True)].detail
    assert not report.ok and len(report.problems) == 9
    with pytest.raises(PreflightError, match="9 problem"):
        report.raise_for_problems()
    assert "wrong-password" not in str(report)


def test_pull_scope_only_and_one_login_for_many_namespaces(token_registry, token_server, registry_users, pushed):
    """reader may only pull: that is enough. Three namespaces share the Secret: one token fetch."""
    reg = PrivateRegistry(
        f"{token_registry.host}/ml",
        username="reader",
        password=registry_users.reader_password,
        pull_secret="ml-pull",
        ca_file=token_registry.ca_file,
    )
    secrets = by_namespace(reg.cluster_objects(namespaces=NAMESPACES))
    token_server.clear_requests()
    report = reg.preflight([pushed["token"]], namespaces=NAMESPACES, secrets=secrets)
    assert report.ok, str(report)
    fetches = [r for r in token_server.requests if r.user == "reader"]
    assert len(fetches) == 1
    assert all("push" not in " ".join(r.scopes) for r in fetches)


def test_tasks_are_checked_with_the_secrets_they_list(ml, pushed):
    template = PodTemplate(
        pod_spec=V1PodSpec(
            containers=[V1Container(name="proxy", image=pushed["basic"])],
            image_pull_secrets=[V1LocalObjectReference(name="team-other")],
        )
    )

    @ml.task(container_image=pushed["basic"], pod_template=template)
    def train(x: int) -> int:
        return x

    secrets = by_namespace(ml.cluster_objects(namespaces=["ml-development"]))
    report = preflight([train], namespaces=["ml-development"], secrets=secrets)
    (check,) = report.checks  # primary and sidecar are the same image: checked once
    assert check.secret_names == ("team-other", "ml-pull")
    assert check.status == "missing-secret" and "team-other" in check.detail

    @ml.task(container_image=pushed["basic"])
    def simple(x: int) -> int:
        return x

    assert preflight([simple], namespaces=["ml-development"], secrets=secrets).ok


def test_secrets_read_through_the_kubernetes_client(ml, pushed, canary_password, basic_registry):
    """Apply, then let the pre-flight read the Secrets back through the API (stand-in server)."""
    alice = PrivateRegistry(ml.prefix, username="alice", password=canary_password, pull_secret="ml-pull")
    with stand_in_api(set(NAMESPACES)) as api:
        alice.cluster_objects(namespaces=NAMESPACES[:2]).apply(api.client())
        report = alice.preflight([pushed["basic"]], namespaces=NAMESPACES, api_client=api.client())
    assert [c.status for c in report.checks] == ["ok", "ok", "missing-secret"]
    assert any(r[1].endswith("/secrets/ml-pull") and r[0] == "GET" for r in api.requests)
    assert canary_password not in str(report)


def test_public_images_are_skipped_and_the_default_image_is_opt_in(ml, pushed):
    template = PodTemplate(pod_spec=V1PodSpec(containers=[V1Container(name="proxy", image="busybox:1.36")]))

    @ml.task(pod_template=template)
    def on_default(x: int) -> int:
        return x

    secrets = by_namespace(ml.cluster_objects(namespaces=["ml-development"]))
    assert preflight([on_default], namespaces=["ml-development"], secrets=secrets).checks == ()
    report = preflight([on_default], namespaces=["ml-development"], secrets=secrets, default_image=pushed["basic"])
    assert [(c.image, c.status) for c in report.checks] == [(pushed["basic"], "ok")]
