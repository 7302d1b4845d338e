"""Cluster objects behind the pull path: the Secret per namespace, the ServiceAccount patch, the PodTemplate.

Flyte (v1) runs a task's pod in ``<project>-<domain>``, and a pod can only use pull secrets from
its own namespace, so the ``kubernetes.io/dockerconfigjson`` Secret is rendered once per
namespace. Three routes then get it onto pods, all rendered here:

* inline on the task (``@reg.task``): needs only the Secrets;
* the namespace's ServiceAccount (``service_account=``): kubelet adds its ``imagePullSecrets`` to
  every pod that runs under it;
* FlytePropeller's default PodTemplate (``pod_template=``), named by ``default-pod-template-name``
  in the propeller config, or by a task's ``pod_template_name``: propeller looks it up in the
  pod's namespace, then in its own.

Manifests are plain dicts (no ``kubernetes`` import needed to render them). They are only ever
returned, written to a path the caller gives (mode 0600), or applied; never printed or logged.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._declaration import DEFAULT_DOMAINS
from .._errors import ConfigurationError
from .._reference import docker_config_key
from ._dockerconfigjson import DOCKERCONFIGJSON_KEY, DOCKERCONFIGJSON_TYPE, build
from ._refresher import HOSTS_ANNOTATION, MANAGED_BY, Refresher, check_kubernetes_name, short_lived_reason

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry
    from ..credentials import Credential
    from ._apply import Applied

#: What Flyte's docs use for the placeholder container a PodTemplate must have; propeller replaces it.
PLACEHOLDER_IMAGE = "docker.io/rwgrim/docker-noop"
_ANNOTATION = "flyte-private-registry"
_ENV_SOURCE = re.compile(r"\benv ([A-Z_][A-Z0-9_]*(?:/[A-Z_][A-Z0-9_]*)*)\b")
_HELPER_SOURCE = re.compile(r"\bcredential (helper|store) (docker-credential-[A-Za-z0-9._-]+)")
_LOCAL_DETAIL = re.compile(r"[/\\~@]")


def source_kind(source: str) -> str:
    """What kind of source a credential came from, fit for a Secret's annotation.

    Cluster readers see annotations, so they carry the kind only (``env HARBOR_TOKEN``,
    ``docker config``, ``credential helper docker-credential-ecr-login``, ``explicit``): never a
    path of the machine that rendered the Secret (``/home/alice/.docker/config.json``), a profile
    or a username.
    """
    if source.startswith("docker config"):
        return "docker config"
    helper = _HELPER_SOURCE.search(source)
    if helper:
        return f"credential {helper[1]} {helper[2]}"
    env = _ENV_SOURCE.search(source)
    if env:
        return f"env {env[1]}" + (" + explicit password" if "explicit password" in source else "")
    if source.startswith("explicit"):
        return "explicit"
    # Anything else (a provider's SDK, a custom keychain): its name up to the first detail, minus
    # anything that looks like a path, a home directory or an address.
    head = re.split(r"[(:;\[,]", source, maxsplit=1)[0]
    return " ".join(word for word in head.split() if not _LOCAL_DETAIL.search(word)) or "other"


def flyte_namespaces(
    projects: Iterable[str], domains: Iterable[str] = DEFAULT_DOMAINS, template: str = "{project}-{domain}"
) -> list[str]:
    """The namespaces Flyte runs pods in: ``<project>-<domain>`` by default (propeller's namespace_mapping)."""
    domains = list(domains)
    return [template.format(project=p, domain=d) for p in projects for d in domains]


def _names(argument: str, values: Iterable[str]) -> list[str]:
    """A list of names; a lone string is refused (iterating ``"flytesnacks"`` would give its letters)."""
    if isinstance(values, (str, bytes)):
        raise ConfigurationError(f"{argument}= takes a list of names, not the single string {values!r}: [{values!r}]")
    return list(values)


def target_namespaces(namespaces: Iterable[str], projects: Iterable[str], domains: Iterable[str]) -> list[str]:
    """Explicit namespaces plus Flyte's for ``projects``; each once, each a valid namespace name.

    A project or domain is checked through the namespace it makes, and the message names both.
    """
    found: list[str] = []
    explicit = [check_kubernetes_name("namespaces", n, label=True) for n in _names("namespaces", namespaces)]
    projects, domains = _names("projects", projects), _names("domains", domains)
    for argument, values in (("projects", projects), ("domains", domains)):
        for value in values:
            if not isinstance(value, str):
                raise ConfigurationError(
                    f"{argument}= holds {value!r}: a name must be a string, not {type(value).__name__}"
                )
    derived = []
    for project in projects:
        for domain in domains:
            namespace = f"{project}-{domain}"
            derived.append(
                check_kubernetes_name(f"projects={project!r}, domains={domain!r}: namespace", namespace, label=True)
            )
    for namespace in [*explicit, *derived]:
        if namespace not in found:
            found.append(namespace)
    if not found:
        raise ConfigurationError("no namespaces: pass projects=[...] (and domains=) or namespaces=[...]")
    return found


@dataclass(frozen=True)
class Document:
    """One manifest and the comment rendered above it; ``sensitive`` when it carries credentials."""

    manifest: dict[str, Any] = field(repr=False)
    comment: str | None = None
    sensitive: bool = False

    def __repr__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"Document({self.kind} {where}{self.name})"

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind"))

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        return self.manifest["metadata"].get("namespace")


def secret_manifest(name: str, namespace: str, payload: bytes, annotations: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {**annotations, HOSTS_ANNOTATION: ",".join(sorted(json.loads(payload)["auths"]))},
        },
        "type": DOCKERCONFIGJSON_TYPE,
        "data": {DOCKERCONFIGJSON_KEY: base64.b64encode(payload).decode()},
    }


def service_account_manifest(name: str, namespace: str, secret_names: Sequence[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
        "imagePullSecrets": [{"name": s} for s in secret_names],
    }


def pod_template_manifest(
    name: str, namespace: str, secret_names: Sequence[str], placeholder_image: str = PLACEHOLDER_IMAGE
) -> dict[str, Any]:
    """A PodTemplate whose only job is ``imagePullSecrets``; propeller merges it under every task pod.

    The ``default`` container is required by the API (a pod spec needs one container) and is
    the name propeller applies to all containers; its image is never run.
    """
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "template": {
            "metadata": {"labels": dict(MANAGED_BY)},
            "spec": {
                "containers": [{"name": "default", "image": placeholder_image}],
                "imagePullSecrets": [{"name": s} for s in secret_names],
            },
        },
    }


def propeller_config(pod_template: str) -> str:
    """The FlytePropeller setting that makes ``pod_template`` the default for every task pod."""
    return (
        "# FlytePropeller: merge this PodTemplate into every task pod.\n"
        "# flyte-core chart (values.yaml):\n"
        "configmap:\n"
        "  k8s:\n"
        "    plugins:\n"
        "      k8s:\n"
        f"        default-pod-template-name: {pod_template}\n"
        "# flyte-binary chart (values.yaml):\n"
        "# configuration:\n"
        "#   inline:\n"
        "#     plugins:\n"
        "#       k8s:\n"
        f"#         default-pod-template-name: {pod_template}\n"
    )


class ClusterObjects:
    """Rendered manifests; :meth:`yaml`, :meth:`write` (0600) or :meth:`apply` them. The repr shows no data."""

    def __init__(self, documents: Sequence[Document], propeller_config: str | None = None) -> None:
        self._documents = tuple(documents)
        self.propeller_config = propeller_config

    @property
    def documents(self) -> tuple[Document, ...]:
        return self._documents

    @property
    def manifests(self) -> list[dict[str, Any]]:
        """Copies of the manifests (Secrets included: handle them as credentials)."""
        return [copy.deepcopy(d.manifest) for d in self._documents]

    @property
    def holds_credentials(self) -> bool:
        return any(d.sensitive for d in self._documents)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for d in self._documents:
            counts[d.kind] = counts.get(d.kind, 0) + 1
        summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        return f"ClusterObjects({summary})"

    def yaml(self) -> str:
        """Multi-document YAML (credentials included when :attr:`holds_credentials`)."""
        import yaml

        parts: list[str] = []
        if self.holds_credentials:
            parts.append("# Holds registry credentials (base64 is not encryption): keep this file private.\n")
        for document in self._documents:
            body = yaml.safe_dump(document.manifest, sort_keys=False, default_flow_style=False)
            comment = "".join(f"# {line}\n" for line in document.comment.splitlines()) if document.comment else ""
            parts.append(f"---\n{comment}{body}")
        return "".join(parts)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`yaml` to ``path`` with mode 0600 (also when the file already existed)."""
        return write_private(Path(path), self.yaml())

    def apply(self, api_client: Any = None, *, create_namespaces: bool = False, adopt: bool = False) -> list[Applied]:
        """Create or update every object through the Kubernetes API (the ``kubernetes`` extra); idempotent.

        Only objects this library created (its managed-by label) are updated, and nothing another
        writer put in them is removed. A Secret or PodTemplate of the same name that someone else
        created raises ``ClusterError`` and stays untouched, unless ``adopt``: then our registry's
        entry is merged into the Secret (every other entry, key, label and annotation kept) and the
        PodTemplate only gains the missing ``imagePullSecrets``. A ServiceAccount is always only
        patched: it gains the missing ``imagePullSecrets`` and keeps the others.
        """
        from ._apply import apply

        return apply(self._documents, api_client, create_namespaces=create_namespaces, adopt=adopt)


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by the owner only; never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
    finally:
        if fd >= 0:
            os.close(fd)
    return path


#: One JSON list per Secret: for each registry it carries, the docker config key, where the
#: credential came from (:func:`source_kind`, never the secret) and when it expires (``None``:
#: long-lived). ``doctor --pod`` reads it to tell an expired token from a refused one.
ENTRIES_ANNOTATION = f"{_ANNOTATION}/entries"


def entry_annotation(registry: str, host: str, credential: Credential) -> dict[str, str | None]:
    """One item of :data:`ENTRIES_ANNOTATION`: registry, host key, credential source kind and expiry."""
    expires = credential.expires_at.isoformat() if credential.expires_at is not None else None
    return {
        "registry": registry,
        "host": docker_config_key(host),
        "source": source_kind(credential.source),
        "expires": expires,
    }


def _group_by_secret(registries: Sequence[PrivateRegistry]) -> dict[str, list[PrivateRegistry]]:
    groups: dict[str, list[PrivateRegistry]] = {}
    for registry in registries:
        group = groups.setdefault(registry.pull_secret_name, [])
        if all(r.prefix != registry.prefix for r in group):
            group.append(registry)
    return groups


def _static_payload(
    name: str, registries: Sequence[PrivateRegistry], allow_short_lived: bool
) -> tuple[bytes, dict[str, str]]:
    """The ``.dockerconfigjson`` for one Secret name (one entry per host) and its annotations."""
    credentials: dict[str, Credential] = {}
    owners: dict[str, str] = {}
    entries: list[dict[str, str | None]] = []
    for registry in registries:
        # The provider alone can say "short-lived": refuse before asking any credential source.
        reason = short_lived_reason(registry)
        credential = None
        if reason is None or allow_short_lived:
            credential = registry.resolve_pull().require()
            reason = reason or short_lived_reason(registry, credential)
        if reason is not None and not allow_short_lived:
            nodes = (
                "let kubelet pull with the node's own identity (EKS node IAM role, GKE node service account, "
                "AKS attach-acr: no Secret at all)"
            )
            if credential is not None:
                fix = (
                    "Declare a long-lived read-only credential for the cluster (pull_username= and "
                    "pull_password_env=: a deploy token, robot account or read:packages PAT)"
                )
            elif registry.provider.kind == "ecr":
                fix = f"Render a refresher (refresher=CronJobRefresher() or ExternalSecretsRefresher()), {nodes}"
            else:
                fix = f"{nodes[0].upper()}{nodes[1:]}, or keep it fresh with an External Secrets generator"
            raise ConfigurationError(
                f"refusing a static pull Secret {name!r} for {registry.registry}: {reason}, after which every "
                f"pull fails. {fix}, or pass allow_short_lived=True to emit it anyway."
            )
        assert credential is not None
        host = registry.reference.canonical_host
        previous = credentials.get(host)
        if previous is not None and (
            previous.username != credential.username
            or previous.password.get_secret_value() != credential.password.get_secret_value()
        ):
            raise ConfigurationError(
                f"pull secret {name!r} would need two different credentials for host {registry.host} "
                f"({owners[host]} and {registry.registry}); a docker config has one entry per host. "
                "Give one of them its own pull_secret=."
            )
        credentials[host] = credential
        owners[host] = registry.registry
        entries.append(entry_annotation(registry.registry, host, credential))
    annotations = {
        f"{_ANNOTATION}/registries": ",".join(r.registry for r in registries),
        f"{_ANNOTATION}/credential-sources": "; ".join(sorted({source_kind(c.source) for c in credentials.values()})),
    }
    expiries = sorted(c.expires_at for c in credentials.values() if c.expires_at is not None)
    if expiries:
        annotations[f"{_ANNOTATION}/expires-at"] = expiries[0].isoformat()
    annotations[ENTRIES_ANNOTATION] = json.dumps(entries, separators=(",", ":"))
    return build(credentials), annotations


def cluster_objects(
    registries: Iterable[PrivateRegistry],
    *,
    projects: Iterable[str] = (),
    domains: Iterable[str] = DEFAULT_DOMAINS,
    namespaces: Iterable[str] = (),
    service_account: str | Sequence[str] | None = None,
    pod_template: str | None = None,
    propeller_namespace: str = "flyte",
    placeholder_image: str = PLACEHOLDER_IMAGE,
    refresher: Refresher | None = None,
    allow_short_lived: bool = False,
) -> ClusterObjects:
    """Everything a cluster needs to pull from ``registries``, for each target namespace.

    * one ``kubernetes.io/dockerconfigjson`` Secret per pull-secret name and namespace, holding
      only its registries' hosts, with the read-only credential when one is declared
      (``resolve_pull()``); registries sharing a ``pull_secret`` share the Secret;
    * with ``service_account`` (e.g. ``"default"``): those ServiceAccounts list the Secrets;
    * with ``pod_template``: a PodTemplate of that name in ``propeller_namespace`` listing them,
      and :attr:`ClusterObjects.propeller_config` for ``default-pod-template-name``.

    Registries with short-lived tokens (``provider.short_lived``, expiring or CI credentials)
    get ``refresher``'s objects instead of a static Secret; without one they raise, unless
    ``allow_short_lived``.
    """
    registries = list(registries)
    if not registries:
        raise ConfigurationError("no registries given")
    # Every name is checked before anything is rendered (or a credential resolved): the API server
    # would only refuse it halfway through an apply.
    targets = target_namespaces(namespaces, projects, domains)
    for registry in registries:
        check_kubernetes_name(f"pull_secret (of {registry.registry})", registry.pull_secret_name)
    if service_account is None:
        accounts: list[str] = []
    elif isinstance(service_account, (list, tuple)):
        accounts = list(service_account)
    else:  # a name, or a value of the wrong type that the check below names
        accounts = [service_account]  # type: ignore[list-item]
    for account in accounts:
        check_kubernetes_name("service_account", account)
    if pod_template is not None:
        check_kubernetes_name("pod_template", pod_template)
    check_kubernetes_name("propeller_namespace", propeller_namespace, label=True)
    documents: list[Document] = []
    groups = _group_by_secret(registries)
    for name, group in groups.items():
        provider_short = [r for r in group if short_lived_reason(r) is not None]
        if provider_short and refresher is not None:
            if len(provider_short) != len(group):
                raise ConfigurationError(
                    f"pull secret {name!r} mixes short-lived and long-lived registries; give "
                    f"{', '.join(r.registry for r in provider_short)} its own pull_secret="
                )
            documents.extend(
                Document(manifest, comment) for manifest, comment in refresher.manifests(name, group, targets)
            )
            continue
        payload, annotations = _static_payload(name, group, allow_short_lived)
        comment = f"Pull secret for {', '.join(r.registry for r in group)}"
        if f"{_ANNOTATION}/expires-at" in annotations:
            comment += f"; expires at {annotations[f'{_ANNOTATION}/expires-at']}"
        for namespace in targets:
            documents.append(Document(secret_manifest(name, namespace, payload, annotations), comment, True))
    secret_names = list(groups)
    for account in accounts:
        for namespace in targets:
            documents.append(
                Document(
                    service_account_manifest(account, namespace, secret_names),
                    "apply() adds these to the account's imagePullSecrets; `kubectl apply` would replace the list",
                )
            )
    config = None
    if pod_template is not None:
        documents.append(
            Document(
                pod_template_manifest(pod_template, propeller_namespace, secret_names, placeholder_image),
                "FlytePropeller's default-pod-template-name (or a task's pod_template_name); "
                "the Secrets must exist in each task namespace",
            )
        )
        config = propeller_config(pod_template)
    return ClusterObjects(documents, config)
