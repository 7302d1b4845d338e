"""Pre-flight: will a pod in each namespace be able to pull each image? Checked the way kubelet does it.

For every (namespace, image) the check walks what kubelet walks, and stops at the first problem:

1. every pull Secret the pod would name exists in the namespace (``missing-secret``), and is a
   ``kubernetes.io/dockerconfigjson`` (or legacy ``dockercfg``) Secret with parsable data
   (``wrong-type``, ``bad-secret``);
2. some entry matches the image by kubelet's rules (``no-entry``): a pod with none falls back to
   an anonymous pull and ``ImagePullBackOff``;
3. a matching entry's credentials log in with *pull* scope on the repository
   (``unauthorized``, through :class:`RegistryClient`);
4. the tag exists (``image-missing``).

Every image a task's pod pulls is a target of its own: the primary, the pod template's sidecars and
its init containers, each checked against every Secret the pod lists (kubelet tries them all).

The cluster read goes through a :class:`SecretSource`: a mapping of Secret objects you already
have (dicts as rendered, or ``V1Secret``), or the Kubernetes API. Registry answers are cached, so
50 namespaces sharing one Secret cost one login.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .._declaration import DEFAULT_DOMAINS
from .._errors import ClusterError, PreflightError, RegistryError
from .._reference import ImageReference, InvalidReference
from ..credentials import Credential, Secret
from ._dockerconfigjson import DOCKERCFG_KEY, DOCKERCFG_TYPE, DOCKERCONFIGJSON_KEY, DOCKERCONFIGJSON_TYPE, parse
from ._k8s_import import import_kubernetes
from ._kubelet import Keyring
from ._objects import target_namespaces
from ._tasks import inner_task, listed_secrets, noop_base, pulled_images, registry_for_image

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry
    from ._dockerconfigjson import AuthEntry

OK = "ok"


class SecretSource(Protocol):
    """Where the pre-flight reads Secrets: ``get`` returns the object or ``None`` when it does not exist."""

    def get(self, namespace: str, name: str) -> Any: ...


class MappingSecrets:
    """Secrets you already hold, per namespace (rendered dicts, ``V1Secret`` objects or API dicts)."""

    def __init__(self, secrets: Mapping[str, Iterable[Any]]) -> None:
        self._by_key: dict[tuple[str, str], Any] = {}
        for namespace, items in secrets.items():
            for item in items:
                self._by_key[(namespace, _field(_field(item, "metadata"), "name"))] = item

    def get(self, namespace: str, name: str) -> Any:
        return self._by_key.get((namespace, name))


class KubernetesSecrets:
    """Reads Secrets through the Kubernetes API (needs ``get`` on secrets in each namespace)."""

    def __init__(self, api_client: Any = None) -> None:
        from ._apply import default_api_client

        self._client = import_kubernetes().client
        self._api = self._client.CoreV1Api(api_client if api_client is not None else default_api_client())

    def get(self, namespace: str, name: str) -> Any:
        from ._apply import reaching_cluster

        try:
            with reaching_cluster(f"read Secret {namespace}/{name}"):
                return self._api.read_namespaced_secret(name, namespace)
        except self._client.ApiException as err:
            if err.status == 404:
                return None
            raise ClusterError(
                f"cannot read Secret {namespace}/{name}: HTTP {err.status} {err.reason}. The pre-flight needs "
                "`get` on secrets in every namespace it checks."
            ) from None


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass(frozen=True)
class Target:
    """One image to check and the pull Secrets a pod running it names."""

    image: str
    secret_names: tuple[str, ...]
    registry: PrivateRegistry | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PullCheck:
    """The verdict for one image in one namespace; ``detail`` says what was found (never a secret)."""

    namespace: str
    image: str
    secret_names: tuple[str, ...]
    status: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == OK

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.namespace:<28} {self.image}  [{self.status}] {self.detail}"


@dataclass(frozen=True)
class PreflightReport:
    """All checks; :attr:`ok` when every pod can pull, :meth:`raise_for_problems` to fail a pipeline."""

    checks: tuple[PullCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[PullCheck]:
        return [c for c in self.checks if not c.ok]

    def __str__(self) -> str:
        head = "pre-flight: every pod can pull its image" if self.ok else f"pre-flight: {len(self.problems)} problem(s)"
        return "\n".join([head, *(str(c) for c in self.checks)])

    def raise_for_problems(self) -> None:
        if not self.ok:
            raise PreflightError(str(self))


# -- targets ------------------------------------------------------------------------------------
def _image_string(image: Any) -> str:
    """What the node pulls: an ImageSpec's name, or for ``builder="noop"`` its base image (all it runs)."""
    if hasattr(image, "image_name"):
        return noop_base(image) or str(image.image_name())
    return str(image)


def _targets(items: Iterable[Any], default: PrivateRegistry | None, default_image: str | None) -> list[Target]:
    """Images (str or ImageSpec) or tasks -> what to check; public images are skipped."""
    targets: list[Target] = []
    for item in items:
        if hasattr(item, "pod_template") or hasattr(inner_task(item), "pod_template"):
            named = tuple(listed_secrets(item))
            for image in pulled_images(item):
                if image is None or (isinstance(image, str) and image.startswith("{{")):
                    if default_image is None:
                        continue  # the image comes from --image: pass default_image= to check it
                    image = default_image
                registry = registry_for_image(image, default)
                if registry is not None:  # public images pull anonymously: nothing to check
                    targets.append(Target(_image_string(image), named or (registry.pull_secret_name,), registry))
            continue
        registry = registry_for_image(item, default)
        if registry is not None:
            targets.append(Target(_image_string(item), (registry.pull_secret_name,), registry))
    unique: list[Target] = []
    for target in targets:
        if target not in unique:
            unique.append(target)
    return unique


# -- one check ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Candidate:
    secret: str
    entry: AuthEntry


def _decoded(value: Any) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _entries(secret: Any) -> tuple[list[AuthEntry] | None, str | None, str]:
    """(entries, problem, detail) for one Secret object."""
    kind = _field(secret, "type")
    data = _field(secret, "data") or {}
    string_data = _field(secret, "string_data") or _field(secret, "stringData") or {}
    name = _field(_field(secret, "metadata"), "name")
    if kind not in (DOCKERCONFIGJSON_TYPE, DOCKERCFG_TYPE):
        return (
            None,
            "wrong-type",
            (
                f"Secret {name} has type {kind!r}, not {DOCKERCONFIGJSON_TYPE!r}; recreate it with "
                "`kubectl create secret docker-registry` or cluster_objects()"
            ),
        )
    key = DOCKERCONFIGJSON_KEY if kind == DOCKERCONFIGJSON_TYPE else DOCKERCFG_KEY
    raw = string_data[key].encode() if key in string_data else _decoded(data.get(key))
    if raw is None:
        return None, "bad-secret", f"Secret {name} has no {key} entry"
    try:
        return parse(raw, legacy=key == DOCKERCFG_KEY), None, ""
    except ValueError as err:
        return None, "bad-secret", f"Secret {name}: {key} is not a docker config ({err})"


class _RegistryProbe:
    """Logs in with pull scope and HEADs the manifest; answers are cached per credential."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], tuple[str, str]] = {}

    def check(
        self, image: str, registry: PrivateRegistry | None, username: str, password: Secret, where: str
    ) -> tuple[str, str]:
        from ..distribution import RegistryClient

        ref = ImageReference.parse(image)
        fingerprint = hashlib.sha256(password.get_secret_value().encode()).hexdigest()
        key = (ref.host, ref.repository, ref.reference, username, fingerprint)
        if key in self._cache:
            return self._cache[key]
        credential = Credential(username, password, source=where)
        client = RegistryClient(
            ref.host,
            credential,
            insecure=registry.insecure if registry is not None else False,
            ca_file=registry.ca_file if registry is not None else None,
            actions=("pull",),
            refusal_hint=registry.provider.refusal_hint if registry is not None else None,
        )
        try:
            with client:
                client.login(ref.repository)
                digest = client.manifest_digest(ref.repository, ref.reference)
        except RegistryError as err:
            answer = ("unauthorized" if err.status in (401, 403) else "error", f"{where}: {err}")
        else:
            if digest is None:
                answer = (
                    "image-missing",
                    f"{where} can pull from {ref.host}, but {ref.repository}{'@' if ref.digest else ':'}"
                    f"{ref.reference} does not exist",
                )
            else:
                answer = (OK, f"{where} can pull {ref.repository}:{ref.reference} ({digest[:19]})")
        self._cache[key] = answer
        return answer


def _check(namespace: str, target: Target, source: SecretSource, probe: _RegistryProbe) -> PullCheck:
    def verdict(status: str, detail: str) -> PullCheck:
        return PullCheck(namespace, target.image, target.secret_names, status, detail)

    keyring: Keyring[_Candidate] = Keyring()
    problems: list[tuple[str, str]] = []
    for name in target.secret_names:
        secret = source.get(namespace, name)
        if secret is None:
            problems.append(("missing-secret", f"Secret {name} does not exist in namespace {namespace}"))
            continue
        entries, problem, detail = _entries(secret)
        if entries is None:
            problems.append((problem or "bad-secret", detail))
            continue
        for entry in entries:
            keyring.add(entry.key, _Candidate(name, entry))
    # kubelet only warns about a missing Secret and carries on with the others, but a pod that
    # names one which is absent is a deployment mistake worth failing on.
    if problems:
        return verdict(*problems[0])
    try:
        matches = keyring.lookup(target.image)
    except InvalidReference as err:
        return verdict("error", str(err))
    if not matches:
        keys = ", ".join(repr(k) for k in keyring.indexes) or "none"
        return verdict(
            "no-entry",
            f"no entry of {', '.join(target.secret_names)} matches {target.image} (entries: {keys}); "
            "kubelet would pull anonymously",
        )
    answers = []
    for match in matches:
        where = f"Secret {match.value.secret} entry {match.value.entry.key!r} (user {match.value.entry.username!r})"
        status, detail = probe.check(
            target.image, target.registry, match.value.entry.username, match.value.entry.password, where
        )
        if status == OK:
            return verdict(OK, detail)
        answers.append((status, detail))
    # kubelet tries every match; report the most telling failure (a missing tag beats a refusal)
    for wanted in ("image-missing", "unauthorized", "error"):
        for status, detail in answers:
            if status == wanted:
                return verdict(status, detail)
    return verdict(*answers[0])


def preflight(
    targets: Iterable[Any],
    *,
    projects: Iterable[str] = (),
    domains: Iterable[str] = DEFAULT_DOMAINS,
    namespaces: Iterable[str] = (),
    secrets: Mapping[str, Iterable[Any]] | SecretSource | None = None,
    api_client: Any = None,
    default: PrivateRegistry | None = None,
    default_image: str | None = None,
) -> PreflightReport:
    """Check that each namespace can pull each target (image string, ImageSpec or task).

    ``secrets`` is where Secrets are read: ``{namespace: [Secret, ...]}``, any object with
    ``get(namespace, name)``, or ``None`` for the cluster (``api_client`` or the kubeconfig).
    A task is checked for every image its pod pulls, with the pull secrets it lists; a task
    image given by ``--image`` is only checked when ``default_image`` says what it is.
    """
    resolved = _targets(targets, default, default_image)
    names = target_namespaces(namespaces, projects, domains)
    if secrets is None:
        source: SecretSource = KubernetesSecrets(api_client)
    elif isinstance(secrets, Mapping):
        source = MappingSecrets(secrets)
    else:
        source = secrets
    probe = _RegistryProbe()
    checks = [_check(namespace, target, source, probe) for namespace in names for target in resolved]
    return PreflightReport(tuple(checks))
