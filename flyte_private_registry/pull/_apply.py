"""Create-or-update of the pull-side objects through the official ``kubernetes`` client (the extra).

Idempotent by construction: each object is read first, and written only when the cluster's copy
does not already contain what we would write (``unchanged`` otherwise). Writes carry the
``resourceVersion`` that was read, so a concurrent change makes the API answer 409 and the object
is re-read and retried once instead of being overwritten blindly.

Lists other people own are merged, never replaced: a ServiceAccount's ``imagePullSecrets`` and
those of a PodTemplate we did not create only gain the missing names.
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
from ._refresher import MANAGED_BY

if TYPE_CHECKING:
    from ._objects import Document

_MERGE_PATCH = "application/merge-patch+json"
_OURS = next(iter(MANAGED_BY.items()))


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
            create=lambda body: getattr(api, f"create_{suffix}")(namespace, body),
            replace=lambda body: getattr(api, f"replace_{suffix}")(name, namespace, body),
            patch=lambda body: getattr(api, f"patch_{suffix}")(name, namespace, body, _content_type=_MERGE_PATCH),
        )
    group, version = api_version.split("/", 1)
    plural = kind.lower() + "s"
    custom = client.CustomObjectsApi(api_client)
    return _Endpoint(
        read=lambda: custom.get_namespaced_custom_object(group, version, namespace, plural, name),
        create=lambda body: custom.create_namespaced_custom_object(group, version, namespace, plural, body),
        replace=lambda body: custom.replace_namespaced_custom_object(group, version, namespace, plural, name, body),
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


def _merged_metadata(existing: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Desired metadata on top of the existing object's labels/annotations (others' entries kept)."""
    metadata = copy.deepcopy(desired["metadata"])
    for key in ("labels", "annotations"):
        combined = {**(existing["metadata"].get(key) or {}), **(desired["metadata"].get(key) or {})}
        if combined:
            metadata[key] = combined
    metadata["resourceVersion"] = existing["metadata"].get("resourceVersion")
    return metadata


def _plan(existing: dict[str, Any], desired: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """What to send for an existing object: ``("replace", body)``, ``("patch", body)`` or None (unchanged)."""
    kind = desired["kind"]
    if covers(existing, desired):
        return None
    if kind == "Secret" and existing.get("type") != desired.get("type"):
        raise ClusterError(
            f"Secret {desired['metadata']['namespace']}/{desired['metadata']['name']} exists with type "
            f"{existing.get('type')!r}; a Secret's type cannot change. Delete it (kubectl delete secret "
            f"{desired['metadata']['name']} -n {desired['metadata']['namespace']}) and apply again."
        )
    if kind == "ServiceAccount":
        patch: dict[str, Any] = {"metadata": {"resourceVersion": existing["metadata"].get("resourceVersion")}}
        wanted = desired.get("imagePullSecrets") or []
        merged = union_pull_secrets(existing.get("imagePullSecrets"), wanted)
        if merged != (existing.get("imagePullSecrets") or []):
            patch["imagePullSecrets"] = merged
        for key in ("labels", "annotations"):
            if not covers(existing["metadata"].get(key) or {}, desired["metadata"].get(key) or {}):
                patch["metadata"][key] = desired["metadata"][key]
        return ("patch", patch) if len(patch) > 1 or len(patch["metadata"]) > 1 else None
    if kind == "PodTemplate" and (existing["metadata"].get("labels") or {}).get(_OURS[0]) != _OURS[1]:
        body = copy.deepcopy(existing)
        spec = body.setdefault("template", {}).setdefault("spec", {})
        merged = union_pull_secrets(spec.get("imagePullSecrets"), desired["template"]["spec"]["imagePullSecrets"])
        if merged == (spec.get("imagePullSecrets") or []):
            return None
        spec["imagePullSecrets"] = merged
        return "replace", body
    body = copy.deepcopy(desired)
    body["metadata"] = _merged_metadata(existing, desired)
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


def _apply_one(api_client: Any, document: Document, create_namespaces: bool) -> Applied:
    client = import_kubernetes().client
    endpoint = _endpoint(api_client, document.manifest)

    def done(action: str) -> Applied:
        return Applied(document.kind, document.namespace, document.name, action)

    for attempt in range(2):
        try:
            existing = api_client.sanitize_for_serialization(endpoint.read())
        except client.ApiException as err:
            if err.status != 404:
                raise _error("read", document, err) from None
            existing = None
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
        plan = _plan(existing, document.manifest)
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


def apply(documents: Sequence[Document], api_client: Any = None, *, create_namespaces: bool = False) -> list[Applied]:
    """Apply ``documents`` in order (Secrets before the accounts and templates that name them)."""
    api_client = api_client if api_client is not None else default_api_client()
    with reaching_cluster("apply the pull-side objects"):
        return [_apply_one(api_client, document, create_namespaces) for document in documents]
