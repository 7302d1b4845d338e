"""Why is this pod stuck in ``ErrImagePull`` / ``ImagePullBackOff``? One named cause per image, and the fix.

The pre-flight (``_preflight``) predicts, before anything runs, whether a namespace can pull an
image; this module works backwards from a pod that already failed. It reads what the kubelet
left behind (``status.containerStatuses[].state.waiting`` and ``initContainerStatuses``, and the
namespace's Events about the pod), then walks the kubelet's own path for each stuck image and
stops at the first thing that breaks it:

``no-secret``        the pod names no pull Secret, and neither does its ServiceAccount: the kubelet
                     pulled anonymously;
``missing-secret``   a Secret the pod names does not exist in its namespace (the kubelet only warns
                     and pulls anonymously);
``bad-secret``       the Secret is not a readable ``kubernetes.io/dockerconfigjson``;
``no-entry``         no entry of those Secrets matches the image by the kubelet's rules (``_kubelet``);
``expired``          the matching entry is a short-lived token past its expiry (from the Secret's
                     ``flyte-private-registry/entries`` annotation or the token's JWT ``exp``) and
                     the registry refuses it;
``refused``          the registry refuses the entry's credential for a pull (tried here, pull scope);
``image-missing``    the credential works, but the tag or digest does not exist;
``platform-missing`` the image exists, but not for the node's platform (the kubelet's "no matching
                     manifest for linux/arm64");
``unknown``          everything above checks out from here: the message names what the kubelet saw.

Cluster objects are read as plain JSON through the official ``kubernetes`` client (injectable
``api_client``), like ``_apply`` and the pre-flight; nothing is written. Credentials only ever go
to the registry they belong to; no output carries a password, token or ``auth`` value.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._errors import ClusterError
from .._reference import ImageReference, InvalidReference
from ._k8s_import import import_kubernetes
from ._kubelet import Keyring, normalize_key
from ._objects import ENTRIES_ANNOTATION
from ._preflight import OK, _Candidate, _entries, _RegistryProbe
from ._tasks import registry_for_image

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry

#: The waiting reasons of a container whose image could not be pulled.
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"})
#: What the kubelet's message says when the image exists but not for the node's platform
#: (dockershim/docker: "no matching manifest for linux/arm64 in the manifest list entries";
#: containerd: "no match for platform in manifest").
_PLATFORM_MARKERS = ("no matching manifest for", "no match for platform in manifest")

CAUSES = (
    "no-secret",
    "missing-secret",
    "bad-secret",
    "no-entry",
    "expired",
    "refused",
    "image-missing",
    "platform-missing",
    "unknown",
)


@dataclass(frozen=True)
class ImageDiagnosis:
    """One container that cannot pull: what the kubelet said, the cause found, and what to do."""

    container: str
    image: str
    init: bool
    reason: str
    message: str
    cause: str
    detail: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "image": self.image,
            "init_container": self.init,
            "reason": self.reason,
            "kubelet_message": self.message,
            "cause": self.cause,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class PodDiagnosis:
    """Every stuck image of one pod; :attr:`ok` when none is stuck on a pull."""

    namespace: str
    pod: str
    service_account: str
    pull_secrets: tuple[str, ...]
    images: tuple[ImageDiagnosis, ...]
    events: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.images

    @property
    def causes(self) -> list[str]:
        return [image.cause for image in self.images]

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "service_account": self.service_account,
            "pull_secrets": list(self.pull_secrets),
            "ok": self.ok,
            "images": [image.to_dict() for image in self.images],
            "events": list(self.events),
        }

    def __str__(self) -> str:
        secrets = ", ".join(self.pull_secrets) or "none"
        lines = [f"pod {self.namespace}/{self.pod} (service account {self.service_account}; pull secrets: {secrets})"]
        if self.ok:
            lines.append("  no container is waiting on an image pull")
        for image in self.images:
            kind = "init container" if image.init else "container"
            lines.append(f"  {kind} {image.container}: {image.image} [{image.reason}]")
            if image.message:
                lines.append(f"    kubelet: {image.message}")
            lines.append(f"    cause: {image.cause}: {image.detail}")
            lines.append(f"    fix: {image.fix}")
        return "\n".join(lines)


# -- reading the cluster -------------------------------------------------------------------------
class _Cluster:
    """Plain-JSON reads of one namespace's Pod, Secrets, ServiceAccount and Events (no typed models:
    the diagnosis must not fail on a field a newer API server adds)."""

    def __init__(self, api_client: Any) -> None:
        from ._apply import default_api_client

        kubernetes = import_kubernetes()
        self._errors = kubernetes.client.ApiException
        self._api = kubernetes.client.CoreV1Api(api_client if api_client is not None else default_api_client())

    def _json(self, what: str, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        from ._apply import reaching_cluster

        try:
            with reaching_cluster(f"read {what}"):
                response = call(*args, _preload_content=False, **kwargs)
        except self._errors as err:
            if err.status == 404:
                return None
            raise ClusterError(
                f"cannot read {what}: HTTP {err.status} {err.reason}. doctor --pod needs `get` on pods, secrets "
                "and serviceaccounts and `list` on events in the pod's namespace."
            ) from None
        return json.loads(response.data or b"{}")

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._json(f"Pod {namespace}/{name}", self._api.read_namespaced_pod, name, namespace)

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._json(f"Secret {namespace}/{name}", self._api.read_namespaced_secret, name, namespace)

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._json(
            f"ServiceAccount {namespace}/{name}", self._api.read_namespaced_service_account, name, namespace
        )

    def events(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        found = self._json(
            f"Events in {namespace}",
            self._api.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}",
        )
        items = (found or {}).get("items") or []
        # a server that ignores the selector (or an old one) must not mix in other pods' events
        return [e for e in items if (e.get("involvedObject") or {}).get("name") == pod]


# -- expiry -----------------------------------------------------------------------------------------
def _jwt_expiry(token: str) -> datetime | None:
    """The ``exp`` of a JWT-shaped token (ACR, GAR service tokens, ...); ``None`` for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return None
    return datetime.fromtimestamp(exp, tz=timezone.utc)


def _annotated_expiry(secret: dict[str, Any], key: str) -> tuple[datetime | None, str | None]:
    """Expiry and source of the entry filed under ``key``, from the Secret's entries annotation."""
    raw = ((secret.get("metadata") or {}).get("annotations") or {}).get(ENTRIES_ANNOTATION)
    try:
        entries = json.loads(raw) if raw else []
    except ValueError:
        return None, None
    wanted = normalize_key(key)
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or normalize_key(str(entry.get("host", ""))) != wanted:
            continue
        expires = entry.get("expires")
        try:
            when = datetime.fromisoformat(expires) if isinstance(expires, str) else None
        except ValueError:
            when = None
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when, entry.get("source")
    return None, None


# -- the walk -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Stuck:
    container: str
    image: str
    init: bool
    reason: str
    message: str


def _stuck_containers(pod: dict[str, Any], events: list[dict[str, Any]]) -> list[_Stuck]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    stuck: list[_Stuck] = []
    for init, specs_key, status_key in (
        (True, "initContainers", "initContainerStatuses"),
        (False, "containers", "containerStatuses"),
    ):
        images = {c.get("name"): c.get("image") for c in spec.get(specs_key) or []}
        for entry in status.get(status_key) or []:
            waiting = (entry.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or ""
            if reason not in PULL_FAILURES:
                continue
            name = entry.get("name") or "?"
            image = images.get(name) or entry.get("image") or ""
            message = waiting.get("message") or _event_message(events, image)
            stuck.append(_Stuck(name, image, init, reason, message))
    return stuck


def _event_message(events: list[dict[str, Any]], image: str) -> str:
    """The latest kubelet event about pulling ``image`` (``ImagePullBackOff`` often has no message of its own)."""
    about = [e for e in events if image and image in str(e.get("message", "")) and e.get("type") == "Warning"]
    about.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    failed = [e for e in about if "Failed to pull" in str(e.get("message", ""))] or about
    return str(failed[-1].get("message", "")) if failed else ""


def _secret_names(pod: dict[str, Any]) -> tuple[str, ...]:
    refs = (pod.get("spec") or {}).get("imagePullSecrets") or []
    return tuple(r.get("name") for r in refs if isinstance(r, dict) and r.get("name"))


def _apply_hint(registry: PrivateRegistry | None, namespace: str, extra: str = "") -> str:
    target = f" {registry.registry}" if registry is not None else ""
    return f"flyte-private-registry secret apply{target} -n {namespace}{extra}"


class _Diagnoser:
    def __init__(self, cluster: _Cluster, namespace: str, pod: dict[str, Any]) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.pod = pod
        self.secret_names = _secret_names(pod)
        self.account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        self.probe = _RegistryProbe()
        self._secrets: dict[str, dict[str, Any] | None] = {}

    def secret(self, name: str) -> dict[str, Any] | None:
        if name not in self._secrets:
            self._secrets[name] = self.cluster.secret(self.namespace, name)
        return self._secrets[name]

    def one(self, stuck: _Stuck) -> ImageDiagnosis:
        def found(cause: str, detail: str, fix: str) -> ImageDiagnosis:
            return ImageDiagnosis(
                stuck.container, stuck.image, stuck.init, stuck.reason, stuck.message, cause, detail, fix
            )

        try:
            ImageReference.parse(stuck.image)
        except InvalidReference as err:
            return found("unknown", f"the image reference is invalid: {err}", "fix the image name in the task")
        registry = registry_for_image(stuck.image)
        ns = self.namespace
        if not self.secret_names:
            account = self.cluster.service_account(ns, self.account)
            listed = [r.get("name") for r in (account or {}).get("imagePullSecrets") or [] if isinstance(r, dict)]
            if listed:
                return found(
                    "no-secret",
                    f"the pod names no imagePullSecrets; ServiceAccount {self.account} lists {', '.join(listed)} "
                    "but the pod was created before that (accounts' secrets are copied in at pod creation)",
                    "delete the pod (or re-run the execution): new pods get the account's pull secrets",
                )
            secret = registry.pull_secret_name if registry is not None else "<pull-secret>"
            return found(
                "no-secret",
                f"the pod names no imagePullSecrets and ServiceAccount {self.account} lists none: the kubelet "
                "pulled anonymously",
                f"define the task with @reg.task / reg.attach (adds imagePullSecrets: [{secret}]), or "
                f"`{_apply_hint(registry, ns, f' --service-account {self.account}')}`, then re-run",
            )
        keyring: Keyring[_Candidate] = Keyring()
        for name in self.secret_names:
            secret = self.secret(name)
            if secret is None:
                return found(
                    "missing-secret",
                    f"Secret {name} does not exist in namespace {ns}; the kubelet only warns and pulls anonymously",
                    f"`{_apply_hint(registry, ns)}` (creates {name}), then re-run",
                )
            entries, problem, detail = _entries(secret)
            if entries is None:
                return found(
                    "bad-secret",
                    detail or f"Secret {name} is unreadable ({problem})",
                    f"delete it (kubectl delete secret {name} -n {ns}) and `{_apply_hint(registry, ns)}`",
                )
            for entry in entries:
                keyring.add(entry.key, _Candidate(name, entry))
        matches = keyring.lookup(stuck.image)
        if not matches:
            keys = ", ".join(repr(k) for k in keyring.indexes) or "none"
            host = ImageReference.parse(stuck.image).host
            return found(
                "no-entry",
                f"no entry of {', '.join(self.secret_names)} matches {stuck.image} by the kubelet's rules "
                f"(entries: {keys}); the kubelet pulled anonymously",
                f"add {host} to a Secret the pod names: `{_apply_hint(registry, ns)}` and make sure the task "
                f"lists {registry.pull_secret_name if registry is not None else 'that Secret'} "
                "(@reg.task / reg.attach for every registry the pod pulls from)",
            )
        return self._tried(stuck, registry, matches, found)

    def _tried(self, stuck: _Stuck, registry: Any, matches: list[Any], found: Any) -> ImageDiagnosis:
        ns = self.namespace
        now = datetime.now(timezone.utc)
        answers: list[tuple[str, str, Any]] = []
        for match in matches:
            candidate: _Candidate = match.value
            where = f"Secret {candidate.secret} entry {candidate.entry.key!r} (user {candidate.entry.username!r})"
            status, detail = self.probe.check(
                stuck.image, registry, candidate.entry.username, candidate.entry.password, where
            )
            if status == OK:
                if any(marker in stuck.message for marker in _PLATFORM_MARKERS):
                    wanted = _platform_in(stuck.message)
                    return found(
                        "platform-missing",
                        f"{detail}, but the image has no manifest for the node's platform{wanted}",
                        "build the image for that platform (ImageSpec(platform='linux/amd64,linux/arm64')) or "
                        "schedule the task on nodes of a platform it has (a nodeSelector on kubernetes.io/arch)",
                    )
                return found(
                    "unknown",
                    f"{detail}: from here the pull works. The node may not reach "
                    f"{ImageReference.parse(stuck.image).host} (proxy, firewall, DNS) or uses another registry mirror",
                    "read the kubelet message above and the node's container runtime log "
                    "(journalctl -u containerd / kubelet)",
                )
            answers.append((status, detail, candidate))
        for status, detail, _candidate in answers:
            if status == "image-missing":
                ref = ImageReference.parse(stuck.image)
                what = "digest" if ref.digest else "tag"
                return found(
                    "image-missing",
                    f"{detail} (the {what} {ref.reference} is not in the registry)",
                    "push it (pyflyte register/package builds and pushes ImageSpec images), or re-register the "
                    f"task with a {what} the registry has: `flyte-private-registry check {stuck.image} --pull-only`",
                )
        for status, detail, candidate in answers:
            expires = self._expiry(candidate)
            if status not in ("unauthorized", "error"):
                continue
            if expires is not None and expires[0] <= now:
                when, source = expires
                origin = f" from {source}" if source else ""
                how = "by the Secret's entries annotation" if source else "by the token's JWT exp"
                return found(
                    "expired",
                    f"Secret {candidate.secret} entry {candidate.entry.key!r} holds a token{origin} that expired at "
                    f"{when.isoformat()} ({how}) and nothing refreshed it; the registry refuses it",
                    f"re-apply now (`{_apply_hint(registry, ns, ' --allow-short-lived')}`) and keep it fresh: "
                    "--refresher cronjob / external-secrets, a long-lived read-only pull credential "
                    "(pull_username= + pull_password_env=), or the node's own identity",
                )
            if status != "unauthorized":
                continue
            return found(
                "refused",
                detail,
                f"give the registry a working read-only credential (pull_username= + pull_password_env=), check "
                f"it with `flyte-private-registry check {stuck.image} --pull-only`, then `{_apply_hint(registry, ns)}`",
            )
        status, detail, _ = answers[0]
        return found(
            "unknown",
            detail,
            f"`flyte-private-registry check {stuck.image} --pull-only` from a machine that reaches the registry",
        )

    def _expiry(self, candidate: _Candidate) -> tuple[datetime, str | None] | None:
        secret = self.secret(candidate.secret) or {}
        when, source = _annotated_expiry(secret, candidate.entry.key)
        if when is not None:
            return when, source
        jwt = _jwt_expiry(candidate.entry.password.get_secret_value())
        return (jwt, None) if jwt is not None else None


def _platform_in(message: str) -> str:
    """`` (linux/arm64)`` when the kubelet's message names the platform it wanted."""
    marker = "no matching manifest for "
    if marker in message:
        rest = message.split(marker, 1)[1].split()
        if rest:
            return f" ({rest[0]})"
    return ""


def diagnose_pod(namespace: str, pod: str, api_client: Any = None) -> PodDiagnosis:
    """Read pod ``namespace/pod`` and name why each of its images cannot be pulled.

    Needs ``get`` on the pod, its Secrets and ServiceAccount, and ``list`` on Events in the
    namespace (``api_client``, or the kubeconfig / in-cluster account). Logs in to registries with
    the Secrets' own credentials, pull scope only. Raises ``ClusterError`` when the pod does not exist.
    """
    cluster = _Cluster(api_client)
    found = cluster.pod(namespace, pod)
    if found is None:
        raise ClusterError(f"pod {namespace}/{pod} does not exist (kubectl get pods -n {namespace})")
    events = cluster.events(namespace, pod)
    diagnoser = _Diagnoser(cluster, namespace, found)
    images = tuple(diagnoser.one(stuck) for stuck in _stuck_containers(found, events))
    event_lines = tuple(
        f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}".strip()
        for e in events
        if e.get("type") == "Warning"
    )
    return PodDiagnosis(
        namespace=namespace,
        pod=pod,
        service_account=diagnoser.account,
        pull_secrets=diagnoser.secret_names,
        images=images,
        events=event_lines,
    )
