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


def test_existing_foreign_pod_template_is_refused_unless_adopted_then_only_gains_the_secret(api, harbor):
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
    before = api.get("flyte", "podtemplates", "flyte-pull")
    with pytest.raises(ClusterError, match=r"PodTemplate flyte/flyte-pull exists and was not created by .*adopt=True"):
        _objects(harbor).apply(api.client())
    assert api.get("flyte", "podtemplates", "flyte-pull") == before
    assert api.writes() == [], "a refusal is decided before anything is written"
    _objects(harbor).apply(api.client(), adopt=True)
    template = api.get("flyte", "podtemplates", "flyte-pull")
    spec = template["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "platform-pull"}, {"name": "harbor-pull"}]
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert template["metadata"]["labels"] == {"owner": "platform"}
    assert template["metadata"]["annotations"] == {"flyte-private-registry/adopted": "true"}
    assert _objects(harbor).apply(api.client())[-1].action == "unchanged"  # adopted: no need to ask again


def test_secret_of_another_type_is_not_overwritten(api, harbor):
    ours = {"app.kubernetes.io/managed-by": "flyte-private-registry"}
    opaque = {"kind": "Secret", "metadata": {"name": "harbor-pull", "labels": ours}, "type": "Opaque"}
    api.put("flytesnacks-staging", "secrets", opaque)
    with pytest.raises(ClusterError, match=r"type 'Opaque'.*a Secret's type cannot change.*delete it"):
        _objects(harbor).apply(api.client(), adopt=True)
    assert api.get("flytesnacks-staging", "secrets", "harbor-pull")["type"] == "Opaque"
    assert api.writes() == []


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


# -- ownership: never destroy what someone else wrote (issue 9) ---------------------------------------------

OURS = {"app.kubernetes.io/managed-by": "flyte-private-registry"}
OTHER_HOST_ENTRY = {
    "username": "ci",
    "password": "other-registry-password",
    "auth": "Y2k6b3RoZXItcmVnaXN0cnktcGFzc3dvcmQ=",
}


def _dockerconfigjson(config: dict) -> str:
    return base64.b64encode(json.dumps(config, indent=2).encode()).decode()


def _auths(secret: dict) -> dict:
    return json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]


def _foreign_regcred() -> dict:
    """What `kubectl create secret docker-registry regcred` plus a platform team's additions looks like."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {
            "name": "regcred",
            "labels": {"app.kubernetes.io/managed-by": "Helm", "team": "platform"},
            "annotations": {"meta.helm.sh/release-name": "platform"},
        },
        "data": {
            ".dockerconfigjson": _dockerconfigjson(
                {"auths": {"quay.io": OTHER_HOST_ENTRY, "harbor.example.com": {"auth": "b2xkOm9sZA=="}}}
            ),
            "notes": base64.b64encode(b"kept by the platform team").decode(),
        },
    }


@pytest.fixture
def regcred(monkeypatch, canary_password):
    monkeypatch.setenv("HARBOR_TOKEN", canary_password)
    return PrivateRegistry(
        "harbor.example.com/ml", username="alice", password_env="HARBOR_TOKEN", pull_secret="regcred"
    )


def test_a_foreign_secret_survives_byte_identical_and_the_error_names_it_and_the_choices(api, regcred):
    api.put("flytesnacks-staging", "secrets", _foreign_regcred())
    before = json.dumps(api.get("flytesnacks-staging", "secrets", "regcred"), sort_keys=True)
    objects = regcred.cluster_objects(projects=["flytesnacks"])
    with pytest.raises(ClusterError) as info:
        objects.apply(api.client())
    message = str(info.value)
    assert "Secret flytesnacks-staging/regcred exists and was not created by flyte-private-registry" in message
    assert "pull_secret=" in message and "apply(adopt=True)" in message and "--adopt" in message
    assert json.dumps(api.get("flytesnacks-staging", "secrets", "regcred"), sort_keys=True) == before
    # decided before any write: development (which has no regcred) was not created either
    assert api.writes() == [] and api.get("flytesnacks-development", "secrets", "regcred") is None


def test_adopt_merges_our_entry_and_keeps_every_other_entry_label_annotation_and_key(api, regcred, canary_password):
    api.put("flytesnacks-staging", "secrets", _foreign_regcred())
    objects = regcred.cluster_objects(projects=["flytesnacks"])
    result = objects.apply(api.client(), adopt=True)
    assert [str(a) for a in result] == [
        "Secret flytesnacks-development/regcred: created",
        "Secret flytesnacks-staging/regcred: updated",
        "Secret flytesnacks-production/regcred: created",
    ]
    adopted = api.get("flytesnacks-staging", "secrets", "regcred")
    auths = _auths(adopted)
    assert auths["quay.io"] == OTHER_HOST_ENTRY  # another registry's entry, untouched
    assert auths["harbor.example.com"]["password"] == canary_password  # ours replaced the stale one for our host
    assert adopted["data"]["notes"] == _foreign_regcred()["data"]["notes"]
    assert adopted["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "Helm",
        "team": "platform",
    }  # not relabelled
    annotations = adopted["metadata"]["annotations"]
    assert annotations["meta.helm.sh/release-name"] == "platform"
    assert annotations["flyte-private-registry/adopted"] == "true"
    assert annotations["flyte-private-registry/hosts"] == "harbor.example.com"
    assert {a.action for a in objects.apply(api.client())} == {"unchanged"}  # adopted once, not asked again


def test_rotation_of_an_adopted_secret_changes_only_our_entry(api, regcred, monkeypatch):
    api.put("flytesnacks-staging", "secrets", _foreign_regcred())
    regcred.cluster_objects(namespaces=["flytesnacks-staging"]).apply(api.client(), adopt=True)
    monkeypatch.setenv("HARBOR_TOKEN", "rotated-token")
    (result,) = regcred.cluster_objects(namespaces=["flytesnacks-staging"]).apply(api.client())
    assert result.action == "updated"
    auths = _auths(api.get("flytesnacks-staging", "secrets", "regcred"))
    assert auths["quay.io"] == OTHER_HOST_ENTRY and auths["harbor.example.com"]["password"] == "rotated-token"


def test_our_own_secret_is_updated_but_entries_and_labels_others_added_are_kept(api, harbor, monkeypatch):
    objects = harbor.cluster_objects(namespaces=["flytesnacks-development"])
    objects.apply(api.client())
    ours = api.get("flytesnacks-development", "secrets", "harbor-pull")
    auths = _auths(ours)
    ours["data"][".dockerconfigjson"] = _dockerconfigjson({"auths": {**auths, "quay.io": OTHER_HOST_ENTRY}})
    ours["metadata"]["labels"]["team"] = "ml"
    api.put("flytesnacks-development", "secrets", ours)
    monkeypatch.setenv("HARBOR_TOKEN", "rotated-token")
    (result,) = harbor.cluster_objects(namespaces=["flytesnacks-development"]).apply(api.client())
    assert result.action == "updated"
    stored = api.get("flytesnacks-development", "secrets", "harbor-pull")
    assert _auths(stored)["quay.io"] == OTHER_HOST_ENTRY
    assert _auths(stored)["harbor.example.com"]["password"] == "rotated-token"
    assert stored["metadata"]["labels"] == {**OURS, "team": "ml"}
    assert "flyte-private-registry/adopted" not in stored["metadata"]["annotations"]


def test_a_host_we_wrote_earlier_is_dropped_but_never_one_someone_else_wrote(api):
    hub = PrivateRegistry("docker.io/acme", username="acme", password="hub-pw", pull_secret="shared")
    quay = PrivateRegistry("quay.io/acme", username="robot", password="quay-pw", pull_secret="shared")
    from flyte_private_registry import cluster_objects

    cluster_objects([hub, quay], namespaces=["flyte"]).apply(api.client())
    stored = api.get("flyte", "secrets", "shared")
    stored["data"][".dockerconfigjson"] = _dockerconfigjson({"auths": {**_auths(stored), "ghcr.io": OTHER_HOST_ENTRY}})
    api.put("flyte", "secrets", stored)
    cluster_objects([hub], namespaces=["flyte"]).apply(api.client())  # quay.io left the shared Secret
    assert set(_auths(api.get("flyte", "secrets", "shared"))) == {"https://index.docker.io/v1/", "ghcr.io"}


def test_our_own_objects_are_updated_in_place_keeping_what_others_added(api):
    from test_short_lived import ECR_HOST, EcrLike

    from flyte_private_registry import CronJobRefresher

    ecr = PrivateRegistry(f"{ECR_HOST}/team", provider=EcrLike(account_id="123456789012", region="eu-west-1"))
    ecr.cluster_objects(namespaces=["flyte"], refresher=CronJobRefresher()).apply(api.client())
    (name,) = [key[2] for key in api.objects if key[1] == "cronjobs"]
    cronjob = api.get("flyte", "cronjobs", name)
    cronjob["metadata"].setdefault("annotations", {})["argocd.argoproj.io/sync-wave"] = "2"
    api.put("flyte", "cronjobs", cronjob)
    updated = ecr.cluster_objects(namespaces=["flyte"], refresher=CronJobRefresher(schedule="30 */3 * * *"))
    actions = {(a.kind, a.action) for a in updated.apply(api.client())}
    assert ("CronJob", "updated") in actions
    stored = api.get("flyte", "cronjobs", name)
    assert stored["spec"]["schedule"] == "30 */3 * * *"
    assert stored["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "2"


def test_foreign_objects_of_the_refresher_kinds_are_refused_even_with_adopt(api):
    from test_short_lived import ECR_HOST, EcrLike

    from flyte_private_registry import CronJobRefresher

    ecr = PrivateRegistry(f"{ECR_HOST}/team", provider=EcrLike(account_id="123456789012", region="eu-west-1"))
    objects = ecr.cluster_objects(namespaces=["flyte"], refresher=CronJobRefresher())
    (cron,) = [d for d in objects.documents if d.kind == "CronJob"]
    job = {"spec": {"template": {"spec": {"containers": [{"name": "backup", "image": "busybox"}]}}}}
    theirs = {"kind": "CronJob", "metadata": {"name": cron.name}, "spec": {"schedule": "@daily", "jobTemplate": job}}
    api.put("flyte", "cronjobs", theirs)
    before = api.get("flyte", "cronjobs", cron.name)
    with pytest.raises(ClusterError, match=rf"CronJob flyte/{cron.name} exists and was not created by .*another name"):
        objects.apply(api.client(), adopt=True)
    assert api.get("flyte", "cronjobs", cron.name) == before and api.writes() == []


def test_writes_name_the_field_manager(api, harbor):
    _objects(harbor).apply(api.client())
    writes = api.writes()
    assert writes and all("fieldManager=flyte-private-registry" in path for _, path, _ in writes)
