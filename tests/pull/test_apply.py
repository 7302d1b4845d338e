"""``ClusterObjects.apply``: create or update through the real ``kubernetes`` client, idempotently.

MOCK-ISH, SAY SO: no Kubernetes can run on this machine, so the API server is a stand-in
(tests/kube_stand_in.py), a real HTTP server answering the REST calls the client makes the way
the API server does (404/409/resourceVersion). It proves the client calls and the
create-or-update logic, not cluster-side validation (tests/pull/test_objects.py validates the manifests
against the official schemas).
"""

import base64
import json

import pytest
from kube_stand_in import stand_in_api

from flyte_private_registry import ClusterError, PrivateRegistry
from flyte_private_registry.pull._apply import covers, union_pull_secrets

NAMESPACES = {"flytesnacks-development", "flytesnacks-staging", "flytesnacks-production", "flyte"}


@pytest.fixture
def api():
    with stand_in_api(NAMESPACES) as server:
        yield server


@pytest.fixture
def harbor(monkeypatch, canary_password):
    monkeypatch.setenv("HARBOR_TOKEN", canary_password)
    return PrivateRegistry(
        "harbor.example.com/ml", username="alice", password_env="HARBOR_TOKEN", pull_secret="harbor-pull"
    )


def _objects(registry):
    return registry.cluster_objects(projects=["flytesnacks"], service_account="default", pod_template="flyte-pull")


def test_apply_creates_then_changes_nothing(api, harbor):
    api.put("flytesnacks-development", "serviceaccounts", {"kind": "ServiceAccount", "metadata": {"name": "default"}})
    first = _objects(harbor).apply(api.client())
    assert [str(a) for a in first] == [
        "Secret flytesnacks-development/harbor-pull: created",
        "Secret flytesnacks-staging/harbor-pull: created",
        "Secret flytesnacks-production/harbor-pull: created",
        "ServiceAccount flytesnacks-development/default: updated",
        "ServiceAccount flytesnacks-staging/default: created",
        "ServiceAccount flytesnacks-production/default: created",
        "PodTemplate flyte/flyte-pull: created",
    ]
    stored = api.get("flytesnacks-staging", "secrets", "harbor-pull")
    assert stored["type"] == "kubernetes.io/dockerconfigjson"
    assert stored["data"] == _objects(harbor).manifests[1]["data"]

    writes = len(api.writes())
    second = _objects(harbor).apply(api.client())
    assert {a.action for a in second} == {"unchanged"}
    assert len(api.writes()) == writes, "an unchanged apply must not write"


def test_rotated_credentials_update_only_the_secrets(api, harbor, monkeypatch):
    _objects(harbor).apply(api.client())
    monkeypatch.setenv("HARBOR_TOKEN", "rotated-token")
    result = _objects(harbor).apply(api.client())
    assert [a.action for a in result] == ["updated"] * 3 + ["unchanged"] * 4
    secret = api.get("flytesnacks-production", "secrets", "harbor-pull")
    entry = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]["harbor.example.com"]
    assert entry["password"] == "rotated-token"
    assert any(method == "PUT" and "/secrets/harbor-pull" in path for method, path, _ in api.requests)


def test_service_account_keeps_its_other_pull_secrets(api, harbor):
    api.put(
        "flytesnacks-development",
        "serviceaccounts",
        {
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "annotations": {"eks.amazonaws.com/role-arn": "arn:x"}},
            "imagePullSecrets": [{"name": "team-other"}],
        },
    )
    _objects(harbor).apply(api.client())
    account = api.get("flytesnacks-development", "serviceaccounts", "default")
    assert account["imagePullSecrets"] == [{"name": "team-other"}, {"name": "harbor-pull"}]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"}
    patches = [r for r in api.requests if r[0] == "PATCH"]
    assert patches and all(content_type == "application/merge-patch+json" for _, _, content_type in patches)


def test_existing_foreign_pod_template_only_gains_the_secret(api, harbor):
    theirs = {
        "kind": "PodTemplate",
        "metadata": {"name": "flyte-pull", "labels": {"owner": "platform"}},
        "template": {
            "spec": {
                "containers": [{"name": "default", "image": "busybox"}],
                "tolerations": [{"key": "gpu", "operator": "Exists"}],
                "imagePullSecrets": [{"name": "platform-pull"}],
            }
        },
    }
    api.put("flyte", "podtemplates", theirs)
    _objects(harbor).apply(api.client())
    template = api.get("flyte", "podtemplates", "flyte-pull")
    spec = template["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "platform-pull"}, {"name": "harbor-pull"}]
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert template["metadata"]["labels"] == {"owner": "platform"}
    assert _objects(harbor).apply(api.client())[-1].action == "unchanged"


def test_secret_of_another_type_is_not_overwritten(api, harbor):
    api.put("flytesnacks-staging", "secrets", {"kind": "Secret", "metadata": {"name": "harbor-pull"}, "type": "Opaque"})
    with pytest.raises(ClusterError, match=r"type 'Opaque'; a Secret's type cannot change\. Delete it"):
        _objects(harbor).apply(api.client())
    assert api.get("flytesnacks-staging", "secrets", "harbor-pull")["type"] == "Opaque"


def test_missing_namespace(harbor):
    with stand_in_api({"flyte"}) as api:
        objects = harbor.cluster_objects(namespaces=["ml-development"])
        with pytest.raises(ClusterError, match=r"namespace ml-development does not exist.*create_namespaces=True"):
            objects.apply(api.client())
        assert [a.action for a in objects.apply(api.client(), create_namespaces=True)] == ["created"]
        assert "ml-development" in api.namespaces


def test_concurrent_change_is_retried(api, harbor):
    _objects(harbor).apply(api.client())
    api.put("flytesnacks-development", "secrets", {**api.get("flytesnacks-development", "secrets", "harbor-pull")})
    api.fail_next[("PUT", "secrets")] = (409, "the object has been modified; please apply your changes")
    harbor2 = PrivateRegistry(harbor.prefix, username="alice", password="new", pull_secret="harbor-pull")
    result = harbor2.cluster_objects(namespaces=["flytesnacks-development"]).apply(api.client())
    assert [a.action for a in result] == ["updated"]


def test_errors_name_the_object_and_never_the_credentials(api, harbor, canary_password):
    encoded = _objects(harbor).manifests[0]["data"][".dockerconfigjson"]
    api.fail_next[("POST", "secrets")] = (422, f"Secret is invalid: data: Invalid value: {encoded} {canary_password}")
    with pytest.raises(ClusterError) as info:
        _objects(harbor).apply(api.client())
    message = str(info.value)
    assert "cannot create Secret flytesnacks-development/harbor-pull: HTTP 422" in message
    assert canary_password not in message and encoded not in message and "***" in message
    api.fail_next[("GET", "secrets")] = (403, 'secrets "harbor-pull" is forbidden')
    with pytest.raises(ClusterError, match=r"HTTP 403.*Check the kubeconfig context"):
        _objects(harbor).apply(api.client())


def test_covers_and_union_are_order_preserving():
    assert covers({"a": 1, "b": {"c": [1, 2]}, "extra": True}, {"b": {"c": [1, 2]}})
    assert not covers({"b": {"c": [2, 1]}}, {"b": {"c": [1, 2]}})
    assert union_pull_secrets([{"name": "x"}, {"name": "y"}], [{"name": "y"}, {"name": "z"}]) == [
        {"name": "x"},
        {"name": "y"},
        {"name": "z"},
    ]
    assert union_pull_secrets(None, [{"name": "z"}]) == [{"name": "z"}]


def test_nothing_reaches_logs_or_stdout(api, harbor, canary_password, caplog, capsys):
    import logging

    caplog.set_level(logging.DEBUG)
    objects = _objects(harbor)
    applied = objects.apply(api.client())
    objects.apply(api.client())
    text = caplog.text + "".join(capsys.readouterr()) + repr(objects) + " ".join(map(str, applied))
    assert canary_password not in text
    assert base64.b64encode(canary_password.encode()).decode() not in text
    assert objects.manifests[0]["data"][".dockerconfigjson"] not in text


def test_refresher_objects_apply_through_their_apis(api):
    """CronJob/RBAC go through the typed batch and rbac APIs, External Secrets through CustomObjectsApi."""
    from test_short_lived import ECR_HOST, EcrLike

    from flyte_private_registry import CronJobRefresher, ExternalSecretsRefresher

    ecr = PrivateRegistry(f"{ECR_HOST}/team", provider=EcrLike(account_id="123456789012", region="eu-west-1"))
    namespaces = ["flytesnacks-development", "flytesnacks-production"]
    cron = ecr.cluster_objects(namespaces=namespaces, refresher=CronJobRefresher())
    assert {a.action for a in cron.apply(api.client())} == {"created"}
    assert {a.action for a in cron.apply(api.client())} == {"unchanged"}
    (name,) = {d.name for d in cron.documents if d.kind == "CronJob"}
    assert len(name) <= 52  # room for the Job suffix the CronJob controller adds
    assert api.get("flyte", "cronjobs", name)["spec"]["schedule"] == "0 */4 * * *"
    assert api.get("flytesnacks-production", "rolebindings", name)["subjects"][0]["namespace"] == "flyte"

    eso = ecr.cluster_objects(namespaces=namespaces, refresher=ExternalSecretsRefresher())
    assert {a.action for a in eso.apply(api.client())} == {"created"}
    assert api.get("flytesnacks-development", "externalsecrets", ecr.pull_secret_name)["kind"] == "ExternalSecret"
    api.missing_groups.add("external-secrets.io")
    api.objects.clear()
    with pytest.raises(ClusterError, match=r"no API for ECRAuthorizationToken|no API for ExternalSecret"):
        eso.apply(api.client())
