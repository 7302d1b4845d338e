"""Create-or-update of the pull-side objects through the official ``kubernetes`` client (the extra).

Idempotent by construction: each object is read first, and written only when the cluster's copy
does not already contain what we would write (``unchanged`` otherwise). Writes carry the
``resourceVersion`` that was read, so a concurrent change makes the API answer 409 and the object
is re-read and retried once instead of being overwritten blindly; they name the field manager
``flyte-private-registry``.

Ownership, like ``kubectl apply`` and unlike a blind replace: an object is *ours* when it carries
our managed-by label. Ours are updated, but what another writer added to them is kept (other
labels, annotations, fields, data keys, docker config entries). An object of the same name that
someone else created is refused with a ``ClusterError`` naming it; with ``adopt`` a Secret gets
our registry's entry merged in (``merge_secret``, the same merge the refresher runs) and a
PodTemplate only the missing ``imagePullSecrets``. A ServiceAccount is never ours: it is only
patched to gain the missing ``imagePullSecrets``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import ClusterError
from ._k8s_import import import_kubernetes
from ._refresher import ADOPTED_ANNOTATION, FIELD_MANAGER, MANAGED_BY, SecretRefused, merge_secret, object_owner

if TYPE_CHECKING:
    from ._objects import Document

_MERGE_PATCH = "application/merge-patch+json"
_OURS = next(iter(MANAGED_BY.items()))
_WRITE = {"field_manager": FIELD_MANAGER}


@dataclass(frozen=True)
class Applied:
    """What :meth:`ClusterObjects.apply` did to one object: ``created``, ``updated`` or ``unchanged``."""

    kind: str
    namespace: str | None
    name: str
    action: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}: {self.action}"


@contextmanager
def reaching_cluster(what: str) -> Iterator[None]:
    """No kubeconfig, or an API server that does not answer, becomes a ``ClusterError`` saying so."""
    kubernetes = import_kubernetes()
    import urllib3

    try:
        yield
    except kubernetes.config.ConfigException as err:
        raise ClusterError(f"cannot {what}: no usable cluster configuration ({err})") from None
    except urllib3.exceptions.HTTPError as err:
        reason = getattr(err, "reason", None) or err
        raise ClusterError(f"cannot {what}: the API server did not answer ({type(reason).__name__})") from None


def default_api_client() -> Any:
    """In a pod: the service account; elsewhere: the current kubeconfig context."""
    kubernetes = import_kubernetes()
    with reaching_cluster("load the Kubernetes configuration"):
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            return kubernetes.client.ApiClient(configuration)
        return kubernetes.config.new_client_from_config()


@dataclass(frozen=True)
class _Endpoint:
    """read/create/replace/patch for one kind, bound to a namespace and name."""

    read: Callable[[], Any]
    create: Callable[[dict[str, Any]], Any]
    replace: Callable[[dict[str, Any]], Any]
    patch: Callable[[dict[str, Any]], Any] | None = None


def _endpoint(api_client: Any, manifest: dict[str, Any]) -> _Endpoint:
    client = import_kubernetes().client
    kind = manifest["kind"]
    api_version = manifest["apiVersion"]
    name = manifest["metadata"]["name"]
    namespace = manifest["metadata"]["namespace"]
    core = client.CoreV1Api(api_client)
    typed = {
        ("v1", "Secret"): (core, "namespaced_secret"),
        ("v1", "ServiceAccount"): (core, "namespaced_service_account"),
        ("v1", "PodTemplate"): (core, "namespaced_pod_template"),
        ("batch/v1", "CronJob"): (client.BatchV1Api(api_client), "namespaced_cron_job"),
        ("rbac.authorization.k8s.io/v1", "Role"): (client.RbacAuthorizationV1Api(api_client), "namespaced_role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"): (
            client.RbacAuthorizationV1Api(api_client),
            "namespaced_role_binding",
        ),
    }
    if (api_version, kind) in typed:
        api, suffix = typed[(api_version, kind)]
        return _Endpoint(
            read=lambda: getattr(api, f"read_{suffix}")(name, namespace),
            create=lambda body: getattr(api, f"create_{suffix}")(namespace, body, **_WRITE),
            replace=lambda body: getattr(api, f"replace_{suffix}")(name, namespace, body, **_WRITE),
            patch=lambda body: getattr(api, f"patch_{suffix}")(
                name, namespace, body, _content_type=_MERGE_PATCH, **_WRITE
            ),
        )
    group, version = api_version.split("/", 1)
    plural = kind.lower() + "s"
    custom = client.CustomObjectsApi(api_client)
    return _Endpoint(
        read=lambda: custom.get_namespaced_custom_object(group, version, namespace, plural, name),
        create=lambda body: custom.create_namespaced_custom_object(group, version, namespace, plural, body, **_WRITE),
        replace=lambda body: custom.replace_namespaced_custom_object(
            group, version, namespace, plural, name, body, **_WRITE
        ),
    )


def covers(existing: Any, desired: Any) -> bool:
    """True when every field of ``desired`` is in ``existing`` with the same value (server defaults ignored)."""
    if isinstance(desired, dict):
        return isinstance(existing, dict) and all(k in existing and covers(existing[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(desired)
            and all(covers(e, d) for e, d in zip(existing, desired, strict=True))
        )
    return bool(existing == desired)


def union_pull_secrets(existing: Iterable[Any] | None, wanted: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``existing`` followed by the ``wanted`` names it lacks (order kept, no duplicates)."""
    merged = [dict(item) for item in existing or [] if isinstance(item, dict)]
    names = {item.get("name") for item in merged}
    for item in wanted:
        if item.get("name") not in names:
            merged.append({"name": item["name"]})
            names.add(item["name"])
    return merged


def overlay(existing: Any, desired: Any) -> Any:
    """``desired`` laid over ``existing``: maps merge key by key (others' keys kept), anything else is ours."""
    if isinstance(existing, dict) and isinstance(desired, dict):
        merged = copy.deepcopy(existing)
        for key, value in desired.items():
            merged[key] = overlay(existing.get(key), value)
        return merged
    return copy.deepcopy(desired)


def _where(manifest: dict[str, Any]) -> str:
    return f"{manifest['metadata'].get('namespace')}/{manifest['metadata']['name']}"


def _foreign(desired: dict[str, Any], adoptable: bool) -> ClusterError:
    """The refusal for an object of our name that someone else created: what it is and the way out."""
    kind, where = desired["kind"], _where(desired)
    label = f"{_OURS[0]}={_OURS[1]}"
    if kind == "Secret":
        choices = (
            "Choose another name for ours (pull_secret= on the registry), or merge this registry's entry into it "
            "and keep every other entry, label and key with apply(adopt=True) (CLI: secret apply --adopt)."
        )
    elif kind == "PodTemplate" and adoptable:
        choices = (
            "Choose another name (pod_template=), or add our pull secrets to its imagePullSecrets and leave "
            "the rest of it alone with apply(adopt=True) (CLI: secret apply --adopt)."
        )
    else:
        choices = "Choose another name for ours, or delete that object if it is a leftover."
    return ClusterError(
        f"{kind} {where} exists and was not created by flyte-private-registry (no {label} label); it was "
        f"left untouched. {choices}"
    )


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy to send back: managedFields are the server's to compute (omitted, it keeps them)."""
    body = copy.deepcopy(obj)
    body.get("metadata", {}).pop("managedFields", None)
    return body


def _plan(existing: dict[str, Any], desired: dict[str, Any], adopt: bool) -> tuple[str, dict[str, Any]] | None:
    """What to send for an existing object: ``("replace", body)``, ``("patch", body)`` or None (unchanged)."""
    kind = desired["kind"]
    labelled = (desired["metadata"].get("labels") or {}).get(_OURS[0]) == _OURS[1]
    if kind == "ServiceAccount" and not labelled:
        # The account patch: never ours, only gains the names it lacks (others' names and order kept).
        wanted = desired.get("imagePullSecrets") or []
        merged = union_pull_secrets(existing.get("imagePullSecrets"), wanted)
        if merged == (existing.get("imagePullSecrets") or []):
            return None
        patch = {"metadata": {"resourceVersion": existing["metadata"].get("resourceVersion")}}
        return "patch", {**patch, "imagePullSecrets": merged}
    if kind == "Secret":
        try:
            body = merge_secret(existing, desired, adopt=adopt)
        except SecretRefused as refused:
            if refused.reason == "foreign":
                raise _foreign(desired, True) from None
            if refused.reason == "type":
                raise ClusterError(
                    f"{refused}; a Secret's type cannot change and it was left untouched. Choose another "
                    f"pull_secret= name, or delete it (kubectl delete secret {desired['metadata']['name']} -n "
                    f"{desired['metadata']['namespace']}) and apply again."
                ) from None
            raise ClusterError(f"{refused}. It was left untouched: choose another pull_secret= name.") from None
        return None if body is None else ("replace", body)
    owner = object_owner(existing.get("metadata") or {})
    if kind == "PodTemplate" and owner != "ours":
        if owner == "foreign" and not adopt:
            raise _foreign(desired, True)
        body = _without_managed_fields(existing)
        if owner == "foreign":
            annotations = body["metadata"].setdefault("annotations", {}) or {}
            body["metadata"]["annotations"] = {**annotations, ADOPTED_ANNOTATION: "true"}
        spec = body.setdefault("template", {}).setdefault("spec", {})
        merged = union_pull_secrets(spec.get("imagePullSecrets"), desired["template"]["spec"]["imagePullSecrets"])
        spec["imagePullSecrets"] = merged
        return None if body == _without_managed_fields(existing) else ("replace", body)
    if owner != "ours":
        raise _foreign(desired, False)
    if covers(existing, desired):
        return None
    body = overlay(_without_managed_fields(existing), desired)
    body["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
    if kind == "PodTemplate":  # our own template still keeps pull secrets someone else added to it
        spec = body["template"]["spec"]
        spec["imagePullSecrets"] = union_pull_secrets(
            (existing.get("template") or {}).get("spec", {}).get("imagePullSecrets"), spec["imagePullSecrets"]
        )
    return "replace", body


def _secrets_in(document: Document) -> list[str]:
    """Strings that must never reach an error message: the Secret's data and the passwords inside."""
    if not document.sensitive:
        return []
    found: list[str] = []
    for value in (document.manifest.get("data") or {}).values():
        found.append(value)
        try:
            config = json.loads(base64.b64decode(value))
        except ValueError:
            continue
        for entry in (config.get("auths") or {}).values():
            found.extend(str(entry.get(k)) for k in ("password", "auth") if entry.get(k))
    return found


def _error(action: str, document: Document, err: Any) -> ClusterError:
    status = getattr(err, "status", None)
    message = ""
    try:
        message = str(json.loads(getattr(err, "body", None) or "{}").get("message", ""))[:300]
    except (ValueError, AttributeError):
        message = ""
    for secret in _secrets_in(document):
        message = message.replace(secret, "***")
    where = f"{document.namespace}/{document.name}" if document.namespace else document.name
    hint = ""
    if status in (401, 403):
        hint = " Check the kubeconfig context and that your user may read and write this kind there."
    return ClusterError(f"cannot {action} {document.kind} {where}: HTTP {status} {message}".rstrip() + "." + hint)


def _namespace_missing(err: Any) -> bool:
    """A 404 on create means a missing namespace, or a kind the API server does not serve (no CRD)."""
    try:
        status = json.loads(getattr(err, "body", None) or "{}")
    except ValueError:
        return True
    details = status.get("details") or {}
    return details.get("kind") == "namespaces" or 'namespaces "' in str(status.get("message", ""))


def _create_namespace(api_client: Any, namespace: str) -> None:
    client = import_kubernetes().client
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(MANAGED_BY)}}
    try:
        client.CoreV1Api(api_client).create_namespace(body)
    except client.ApiException as err:
        if err.status != 409:
            raise


def _read(api_client: Any, document: Document) -> dict[str, Any] | None:
    """The cluster's copy of ``document`` as plain JSON, or None when there is none."""
    client = import_kubernetes().client
    try:
        return dict(api_client.sanitize_for_serialization(_endpoint(api_client, document.manifest).read()))
    except client.ApiException as err:
        if err.status != 404:
            raise _error("read", document, err) from None
        return None


def _apply_one(api_client: Any, document: Document, create_namespaces: bool, adopt: bool) -> Applied:
    client = import_kubernetes().client
    endpoint = _endpoint(api_client, document.manifest)

    def done(action: str) -> Applied:
        return Applied(document.kind, document.namespace, document.name, action)

    for attempt in range(2):
        existing = _read(api_client, document)
        if existing is None:
            try:
                endpoint.create(copy.deepcopy(document.manifest))
                return done("created")
            except client.ApiException as err:
                if err.status == 404 and not _namespace_missing(err):
                    raise ClusterError(
                        f"the cluster has no API for {document.kind} ({document.manifest['apiVersion']}): "
                        "install the operator that defines it (External Secrets for ExternalSecret and "
                        "ECRAuthorizationToken) or choose another refresher."
                    ) from None
                if err.status == 404 and document.namespace and create_namespaces and attempt == 0:
                    _create_namespace(api_client, document.namespace)
                    continue
                if err.status == 404 and document.namespace:
                    raise ClusterError(
                        f"namespace {document.namespace} does not exist, so {document.kind} {document.name} cannot "
                        "be created there. Create the Flyte project first (flytectl create project ...: Flyte "
                        "makes its namespaces), or pass create_namespaces=True."
                    ) from None
                if err.status == 409 and attempt == 0:
                    continue  # created concurrently: read it and compare
                raise _error("create", document, err) from None
        plan = _plan(existing, document.manifest, adopt)
        if plan is None:
            return done("unchanged")
        verb, body = plan
        try:
            if verb == "patch" and endpoint.patch is not None:
                endpoint.patch(body)
            else:
                endpoint.replace(body)
            return done("updated")
        except client.ApiException as err:
            if err.status == 409 and attempt == 0:
                continue  # changed since we read it: read again
            raise _error("update", document, err) from None
    raise ClusterError(f"{document.kind} {document.namespace}/{document.name} kept changing while being applied")


def apply(
    documents: Sequence[Document], api_client: Any = None, *, create_namespaces: bool = False, adopt: bool = False
) -> list[Applied]:
    """Apply ``documents`` in order (Secrets before the accounts and templates that name them).

    Every object is read and judged first, so an object someone else created is refused before
    anything at all is written (no half-applied set of namespaces); the error names it.
    """
    api_client = api_client if api_client is not None else default_api_client()
    with reaching_cluster("apply the pull-side objects"):
        for document in documents:
            existing = _read(api_client, document)
            if existing is not None:
                _plan(existing, document.manifest, adopt)  # raises for an object we may not touch
        return [_apply_one(api_client, document, create_namespaces, adopt) for document in documents]
