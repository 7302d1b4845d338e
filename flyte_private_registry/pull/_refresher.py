"""Pull secrets for registries whose tokens die within hours (ECR: 12 h), re-minted in the cluster.

A static Secret from such a token works until it expires and then every pull fails, so the
library never renders one silently (see :func:`short_lived_reason`). Instead it renders one of:

* :class:`CronJobRefresher`: a CronJob (with its ServiceAccount and per-namespace RBAC) that runs
  ``aws ecr get-login-password`` into the pod's memory, then merges the registry's entry into the
  Secret of every namespace (:func:`merge_secret`, the same merge ``apply()`` uses), every 4 hours
  by default (a third of the token's lifetime, so one failed run is harmless); the token is never
  a process argument;
* :class:`ExternalSecretsRefresher`: an External Secrets ``ECRAuthorizationToken`` generator and
  an ``ExternalSecret`` per namespace that templates it into a ``kubernetes.io/dockerconfigjson``
  Secret (needs the External Secrets Operator).

Both authenticate to AWS with the pod's identity (IRSA / EKS Pod Identity), so no long-lived AWS
key is stored in the cluster. On EKS the nodes' own role usually makes all of this unnecessary.
"""

from __future__ import annotations

import base64
import copy
import inspect
import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import ConfigurationError
from .._reference import docker_config_key, kubernetes_name_problem
from ._dockerconfigjson import DOCKERCONFIGJSON_KEY, DOCKERCONFIGJSON_TYPE

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry
    from ..credentials import Credential

MANAGED_BY = {"app.kubernetes.io/managed-by": "flyte-private-registry"}
#: Annotation prefix of everything this library records on an object.
ANNOTATION_PREFIX = "flyte-private-registry/"
#: The ``auths`` keys this library wrote into a Secret: the only entries it may ever replace or drop.
HOSTS_ANNOTATION = ANNOTATION_PREFIX + "hosts"
#: Set on a Secret or PodTemplate someone else created once the user adopted it (``apply(adopt=True)``).
ADOPTED_ANNOTATION = ANNOTATION_PREFIX + "adopted"
#: Who Kubernetes records as the writer of our fields (``kubectl get --show-managed-fields``).
FIELD_MANAGER = "flyte-private-registry"
#: Env vars holding a token that dies with its CI job: GitLab's job token (also as CI_REGISTRY_PASSWORD),
#: GitHub Actions' GITHUB_TOKEN. Matched as whole names: GITHUB_TOKEN_READONLY or MY_GITHUB_TOKEN are
#: other variables (``\b`` counts ``_`` as part of a name).
_CI_TOKEN_VARIABLES = re.compile(r"\b(?:CI_JOB_TOKEN|CI_REGISTRY_PASSWORD|GITHUB_TOKEN)\b")


def is_ci_job_token_source(source: str) -> bool:
    """Does a credential source (a keychain's name) name a CI job token variable, as a whole name?"""
    return _CI_TOKEN_VARIABLES.search(source) is not None


def short_lived_reason(registry: PrivateRegistry, credential: Credential | None = None) -> str | None:
    """Why a static Secret for ``registry`` would stop working, or ``None`` if it would not.

    An explicit read-only credential (``pull_username`` + ``pull_password[_env]``: a GAR JSON key,
    an ACR token) is judged by itself, not by the provider's usual tokens, and is never taken for a
    CI job token: the user named it for the cluster.
    """
    provider = registry.provider
    explicit = registry.pull_username is not None and (
        registry.pull_password is not None or registry.pull_password_env is not None
    )
    if getattr(provider, "short_lived", False) and not explicit:
        return f"{provider.kind} registry tokens expire within hours"
    if credential is not None:
        if credential.expires_at is not None:
            return f"the credential from {credential.source} expires at {credential.expires_at.isoformat()}"
        if not explicit and is_ci_job_token_source(credential.source):
            return f"the credential from {credential.source} is a CI job token that dies with the job"
    return None


@dataclass(frozen=True)
class EcrTarget:
    """What a refresher needs to mint an ECR token: the registry host, its account and region."""

    host: str
    account_id: str
    region: str


def ecr_target(registry: PrivateRegistry) -> EcrTarget:
    """Account and region of an ECR registry, read from its host (the ECR provider's own parser)."""
    from ..providers._ecr_hosts import parse_ecr_host

    try:
        parsed = parse_ecr_host(registry.host)
    except ConfigurationError:
        raise ConfigurationError(
            f"no in-cluster refresher for {registry.provider.kind} registry {registry.registry}: "
            "refreshers mint ECR tokens only. For GAR/ACR let kubelet pull with the node's identity (GKE "
            "node service account with Artifact Registry Reader, AKS attach-acr) or use an External Secrets "
            "generator (GCRAccessToken, ACRAccessToken)."
        ) from None
    if parsed.public:
        raise ConfigurationError(
            f"{registry.registry} is ECR Public: its images can be pulled anonymously, so the cluster needs "
            "no pull secret (an authenticated pull only raises rate limits). Use @task instead of @reg.task."
        )
    assert parsed.account_id is not None  # private ECR hosts always name the account
    return EcrTarget(host=parsed.host, account_id=parsed.account_id, region=parsed.region)


def _metadata(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY), **extra}


class Refresher(Protocol):
    """Something that renders the objects keeping a short-lived pull Secret fresh."""

    def manifests(
        self, secret_name: str, registries: Sequence[PrivateRegistry], namespaces: Sequence[str]
    ) -> list[tuple[dict[str, Any], str | None]]: ...


def _single_target(secret_name: str, registries: Sequence[PrivateRegistry]) -> EcrTarget:
    targets = {ecr_target(r) for r in registries}
    if len(targets) != 1:
        hosts = ", ".join(sorted(t.host for t in targets))
        raise ConfigurationError(
            f"pull secret {secret_name!r} is shared by several ECR registries ({hosts}); a refresher mints one "
            "token per Secret. Give each registry its own pull_secret=."
        )
    return targets.pop()


# -- names and schedules, checked before anything is rendered ------------------------------------


def check_kubernetes_name(argument: str, value: object, *, label: bool = False) -> str:
    """``value`` if it can name a Kubernetes object, else a ``ConfigurationError`` naming ``argument``.

    ``label=True`` is the namespace rule (RFC 1123 label, 63 characters); otherwise the rule for
    Secrets, ServiceAccounts and PodTemplates (RFC 1123 subdomain, 253). Checked here, before
    rendering, because the API server would only refuse it halfway through an apply.
    """
    problem = kubernetes_name_problem(value, label=label)
    if problem is not None:
        what = "namespace name" if label else "object name"
        raise ConfigurationError(f"{argument}={value!r} is not valid: a Kubernetes {what} {problem}")
    assert isinstance(value, str)
    return value


_CRON_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: (field, lowest, highest, names counted from ``lowest``): Kubernetes' parser (robfig/cron, standard).
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
CRON_RULE = (
    "five fields separated by spaces (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, "
    "day of week 0-6 or SUN-SAT), each '*', '?', a value, a range a-b, a step */n, a/n or a-b/n, or a "
    f"comma-separated list of those; or one of {', '.join(_CRON_MACROS)}"
)


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        number = int(text)
        return number if low <= number <= high else None
    upper = text.upper()
    return names.index(upper) + low if upper in names else None


def _cron_field_problem(field: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    for part in field.split(","):
        base, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            return f"the {name} field {field!r} has a step {step!r} that is not a whole number above 0"
        if base in ("*", "?"):
            continue
        start_text, dash, end_text = base.partition("-")
        start = _cron_value(start_text, low, high, names)
        end = _cron_value(end_text, low, high, names) if dash else start
        if start is None or end is None:
            return f"the {name} field {field!r} has {part!r}, outside {low}-{high}" + (
                f" and not one of {'/'.join(names)}" if names else ""
            )
        if start > end:
            return f"the {name} field {field!r} has the range {base!r}, which runs backwards"
    return None


def cron_schedule_problem(value: object) -> str | None:
    """Why a CronJob would refuse ``value`` as its ``schedule`` (``None`` when it accepts it).

    Follows the standard parser Kubernetes uses (robfig/cron), but stricter about layout: a line
    break, leading or trailing whitespace, non-ASCII or ``TZ=`` (use the CronJob's ``timeZone``)
    are refused rather than silently trimmed.
    """
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value.isascii():
        return "holds non-ASCII characters"
    if re.fullmatch(r"[^\s]+(?:[ \t]+[^\s]+)*", value) is None:
        return "is empty, or has a line break or leading or trailing whitespace"
    if value.startswith("@"):
        return None if value in _CRON_MACROS else f"{value!r} is not a macro Kubernetes knows"
    if value.upper().startswith(("TZ=", "CRON_TZ=")):
        return "names a time zone; Kubernetes wants it in the CronJob's timeZone field, not the schedule"
    fields = value.split()
    if len(fields) != len(_CRON_FIELDS):
        return f"has {len(fields)} fields, not {len(_CRON_FIELDS)}"
    for field, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        problem = _cron_field_problem(field, name, low, high, names)
        if problem is not None:
            return problem
    return None


def check_cron_schedule(argument: str, value: object) -> str:
    """``value`` if Kubernetes accepts it as a CronJob schedule, else a ``ConfigurationError`` saying why."""
    problem = cron_schedule_problem(value)
    if problem is not None:
        raise ConfigurationError(f"{argument}={value!r} is not a CronJob schedule: it {problem}. Write {CRON_RULE}.")
    assert isinstance(value, str)
    return value


# -- ownership and the merge, shared by apply() and the refresher pod -----------------------------
# The three definitions below run in two places: imported here by apply(), and copied verbatim
# (inspect.getsource) into the refresher pod's program, so both merge the same way. They use only
# the standard library and the constants the program's preamble defines.


class SecretRefused(Exception):
    """An existing Secret the merge must leave alone; ``reason`` is ``foreign``, ``type`` or ``unreadable``.

    The message names the object (namespace/name) and never its data.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def object_owner(metadata: dict[str, Any]) -> str:
    """``ours`` (our managed-by label), ``adopted`` (the user let us share it) or ``foreign``."""
    key, value = next(iter(MANAGED_BY.items()))
    if (metadata.get("labels") or {}).get(key) == value:
        return "ours"
    if (metadata.get("annotations") or {}).get(ADOPTED_ANNOTATION) == "true":
        return "adopted"
    return "foreign"


def merge_secret(existing: dict[str, Any], desired: dict[str, Any], *, adopt: bool) -> dict[str, Any] | None:
    """The Secret to write back (``existing`` with our entries merged in), or ``None`` if it already holds them.

    Only what this library wrote is ever replaced or dropped: the ``auths`` entries named by its
    hosts annotation and the annotations under its prefix. Every other entry, data key, label
    and annotation is kept. A Secret someone else created is refused unless ``adopt``; an adopted
    one keeps its labels (its managed-by label stays its owner's) and is marked adopted, so later
    runs may update our entry in it again. The ``resourceVersion`` read is kept, so the write
    fails with 409 if anyone changed the Secret in between.
    """
    metadata = existing.get("metadata") or {}
    where = f"{desired['metadata'].get('namespace')}/{desired['metadata']['name']}"
    owner = object_owner(metadata)
    if owner == "foreign" and not adopt:
        raise SecretRefused("foreign", f"Secret {where} exists and was not created by flyte-private-registry")
    if existing.get("type") != desired.get("type"):
        raise SecretRefused(
            "type", f"Secret {where} exists with type {existing.get('type')!r}, not {desired.get('type')!r}"
        )
    key = DOCKERCONFIGJSON_KEY
    wanted = json.loads(base64.b64decode(desired["data"][key]))["auths"]
    config: Any = {}
    raw = (existing.get("data") or {}).get(key)
    if raw:
        try:
            config = json.loads(base64.b64decode(raw, validate=True))
        except ValueError:
            config = None
        if not isinstance(config, dict) or not isinstance(config.get("auths", {}), dict):
            raise SecretRefused(
                "unreadable",
                f"Secret {where} holds a {key} that is not a docker config (a JSON object with an 'auths' "
                "object), so no entry can be merged into it without losing what it holds",
            )
    annotations = metadata.get("annotations") or {}
    ours_before = set(filter(None, str(annotations.get(HOSTS_ANNOTATION, "")).split(",")))
    if owner == "foreign":
        ours_before = set()
    auths = {h: e for h, e in (config.get("auths") or {}).items() if h in wanted or h not in ours_before}
    auths.update(wanted)
    merged = {**config, "auths": auths}

    body = copy.deepcopy(existing)
    body["metadata"] = copy.deepcopy(metadata)
    body["metadata"].pop("managedFields", None)
    if merged != config:
        text = json.dumps(merged, indent=None, separators=(",", ":"), sort_keys=True)
        body["data"] = {**(existing.get("data") or {}), key: base64.b64encode(text.encode()).decode()}
    if owner == "ours":
        body["metadata"]["labels"] = {**(metadata.get("labels") or {}), **(desired["metadata"].get("labels") or {})}
    kept = {k: v for k, v in annotations.items() if not k.startswith(ANNOTATION_PREFIX)}
    ours = {k: v for k, v in (desired["metadata"].get("annotations") or {}).items() if k.startswith(ANNOTATION_PREFIX)}
    ours[HOSTS_ANNOTATION] = ",".join(sorted(wanted))
    if owner != "ours":
        ours[ADOPTED_ANNOTATION] = "true"
    body["metadata"]["annotations"] = {**kept, **ours}

    before = copy.deepcopy(existing)
    before.setdefault("metadata", {}).pop("managedFields", None)
    return None if body == before else body


def refresh_secrets(environ: Any) -> int:
    """The refresher pod's second step: merge the fresh ECR token into the Secret of every namespace.

    Reads the token the first step left in the pod's memory (and deletes it), then for each
    namespace: create the Secret if missing; else :func:`merge_secret` and write it back with the
    ``resourceVersion`` it read (a concurrent change is re-read, never overwritten). Talks to
    the API server with the pod's service account through the standard library only, so the
    image needs nothing but Python. Prints one line per namespace and never the token; the exit
    status is 1 when any namespace was refused or failed.
    """
    import os
    import ssl
    import sys
    import urllib.error
    import urllib.request

    token_path = os.path.join(environ["WORK_DIR"], "token")
    try:
        with open(token_path, encoding="ascii", errors="replace") as handle:
            token = handle.read().strip()
    except OSError:
        token = ""
    finally:
        if os.path.exists(token_path):
            os.remove(token_path)
    if not token or token.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="):
        print("no base64 ECR token was left by the first step", file=sys.stderr)
        return 1
    name, host_key = environ["SECRET_NAME"], environ["REGISTRY_HOST"]
    adopt = environ.get("ADOPT") == "true"
    auth = base64.b64encode(("AWS:" + token).encode()).decode()
    config = {"auths": {host_key: {"username": "AWS", "password": token, "auth": auth}}}
    payload = base64.b64encode(json.dumps(config, separators=(",", ":"), sort_keys=True).encode()).decode()
    hidden = (token, auth, payload)

    server = environ.get("API_SERVER")
    if not server:
        host = environ["KUBERNETES_SERVICE_HOST"]
        server = f"https://[{host}]" if ":" in host else f"https://{host}"
        server += f":{environ.get('KUBERNETES_SERVICE_PORT', '443')}"
    account = environ.get("SERVICE_ACCOUNT_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
    with open(os.path.join(account, "token"), encoding="utf-8") as handle:
        bearer = handle.read().strip()
    ca_file = os.path.join(account, "ca.crt")
    context = ssl.create_default_context(cafile=ca_file if os.path.exists(ca_file) else None)

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        query = f"?fieldManager={FIELD_MANAGER}" if method in ("POST", "PUT") else ""
        request = urllib.request.Request(
            server + path + query,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {bearer}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read() or b"{}")
            except ValueError:
                return error.code, {}
        except OSError as error:
            return 0, {"message": f"the API server did not answer ({type(error).__name__})"}

    def said(answer: Any) -> str:
        message = str(answer.get("message", "") if isinstance(answer, dict) else "")[:300]
        for secret in hidden:
            message = message.replace(secret, "***")
        return message

    failed = 0
    for namespace in environ["NAMESPACES"].split():
        desired = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": DOCKERCONFIGJSON_TYPE,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(MANAGED_BY),
                "annotations": {HOSTS_ANNOTATION: host_key},
            },
            "data": {DOCKERCONFIGJSON_KEY: payload},
        }
        collection = f"/api/v1/namespaces/{namespace}/secrets"
        outcome = "kept changing while being written"
        for _ in range(3):
            status, existing = call("GET", f"{collection}/{name}")
            if status == 404:
                status, answer = call("POST", collection, desired)
                if status == 409:
                    continue  # created meanwhile: read it and merge into it
                outcome = "created" if status in (200, 201) else f"cannot create: HTTP {status} {said(answer)}"
                break
            if status != 200:
                outcome = f"cannot read: HTTP {status} {said(existing)}"
                break
            try:
                body = merge_secret(existing, desired, adopt=adopt)
            except SecretRefused as refused:
                advice = (
                    "; left untouched. Give the registry another pull_secret=, or render the refresher with "
                    "CronJobRefresher(adopt=True) to merge its entry in and keep the others"
                    if refused.reason == "foreign"
                    else "; left untouched"
                )
                outcome = f"refused: {refused}{advice}"
                break
            if body is None:
                outcome = "unchanged"
                break
            status, answer = call("PUT", f"{collection}/{name}", body)
            if status == 409:
                continue  # changed since it was read: read again
            outcome = "updated" if status == 200 else f"cannot update: HTTP {status} {said(answer)}"
            break
        ok = outcome in ("created", "updated", "unchanged")
        failed += 0 if ok else 1
        print(f"secret {namespace}/{name}: {outcome}".rstrip(), file=sys.stdout if ok else sys.stderr)
    return 1 if failed else 0


_PROGRAM_PARTS = (SecretRefused, object_owner, merge_secret, refresh_secrets)


def merge_program() -> str:
    """The refresher pod's Python program: the constants, the shared merge, and :func:`refresh_secrets`."""
    constants = {
        "MANAGED_BY": MANAGED_BY,
        "ANNOTATION_PREFIX": ANNOTATION_PREFIX,
        "HOSTS_ANNOTATION": HOSTS_ANNOTATION,
        "ADOPTED_ANNOTATION": ADOPTED_ANNOTATION,
        "FIELD_MANAGER": FIELD_MANAGER,
        "DOCKERCONFIGJSON_KEY": DOCKERCONFIGJSON_KEY,
        "DOCKERCONFIGJSON_TYPE": DOCKERCONFIGJSON_TYPE,
    }
    preamble = "from __future__ import annotations\n\nimport base64\nimport copy\nimport json\nimport os\nimport sys\n"
    preamble += "from typing import Any\n\n" + "".join(f"{k} = {v!r}\n" for k, v in constants.items())
    parts = [inspect.getsource(part) for part in _PROGRAM_PARTS]
    return "\n\n".join([preamble, *parts, "sys.exit(refresh_secrets(os.environ))\n"])


# -- the CronJob ----------------------------------------------------------------------------------

#: Where the first step leaves the token for the second: a memory-backed emptyDir.
WORK_DIR = "/work"
#: Runs in the aws-cli image (Amazon Linux: a shell and coreutils). The token only ever flows through
#: pipes and a file in the pod's memory, never through a command line (visible in the process list)
#: nor an environment variable.
_TOKEN_SCRIPT = textwrap.dedent(
    """\
    set -eu
    umask 022  # readable by the merge container, whatever user its image runs as
    cd "$WORK_DIR"
    aws ecr get-login-password --region "$AWS_REGION" > .login
    tr -d '\\r\\n' < .login > .token
    rm -f .login
    if [ ! -s .token ] || [ -n "$(tr -d 'A-Za-z0-9+/=' < .token)" ]; then
      rm -f .token
      echo "aws ecr get-login-password did not print a base64 token" >&2
      exit 1
    fi
    mv .token token
    echo "fetched an ECR token for $REGISTRY_HOST"
    """
)


@dataclass(frozen=True)
class CronJobRefresher:
    """A CronJob that re-mints the ECR pull Secret in every namespace (default: every 4 h; tokens last 12 h).

    Its pod has two steps sharing an in-memory ``emptyDir``: an init container (``aws_cli_image``,
    which needs a shell and ``tr``) fetches the token; then ``python_image`` runs a small
    standard-library program that merges the registry's entry into each namespace's Secret
    through the API (:func:`refresh_secrets`): it creates a missing Secret, updates one this
    library created, keeps every other entry, and refuses a Secret someone else created unless
    ``adopt``. The token is never a command-line argument or an environment variable.

    ``role_arn`` annotates its ServiceAccount for IRSA; the role needs ``ecr:GetAuthorizationToken``.
    Pin ``aws_cli_image``/``python_image`` to images your cluster can pull without this Secret (a
    public registry or a mirror you trust): the refresher cannot use the Secret it creates. Run it
    once right away with ``kubectl create job --from=cronjob/<name> <name>-first -n <namespace>``.
    """

    namespace: str = "flyte"
    schedule: str = "0 */4 * * *"
    service_account: str = "flyte-private-registry-refresher"
    role_arn: str | None = None
    aws_cli_image: str = "public.ecr.aws/aws-cli/aws-cli:2.17.0"
    python_image: str = "public.ecr.aws/docker/library/python:3.12-alpine"
    adopt: bool = False

    def __post_init__(self) -> None:
        check_kubernetes_name("CronJobRefresher(namespace=)", self.namespace, label=True)
        check_kubernetes_name("CronJobRefresher(service_account=)", self.service_account)
        check_cron_schedule("CronJobRefresher(schedule=)", self.schedule)
        for field_name in ("aws_cli_image", "python_image"):
            image = getattr(self, field_name)
            if not isinstance(image, str) or not image or not image.isascii() or any(c.isspace() for c in image):
                raise ConfigurationError(f"CronJobRefresher({field_name}=) {image!r} is not an image reference")
        if self.role_arn is not None and (not isinstance(self.role_arn, str) or not self.role_arn.startswith("arn:")):
            raise ConfigurationError(f"CronJobRefresher(role_arn=) {self.role_arn!r} is not an IAM role ARN")
        if not isinstance(self.adopt, bool):
            raise ConfigurationError(f"CronJobRefresher(adopt=) must be True or False, not {self.adopt!r}")

    def manifests(
        self, secret_name: str, registries: Sequence[PrivateRegistry], namespaces: Sequence[str]
    ) -> list[tuple[dict[str, Any], str | None]]:
        target = _single_target(secret_name, registries)
        name = f"{secret_name}-refresh"[:52].rstrip("-.")  # CronJob names must leave room for job suffixes
        annotations = {"eks.amazonaws.com/role-arn": self.role_arn} if self.role_arn else None
        sa_meta = _metadata(self.service_account, self.namespace)
        if annotations:
            sa_meta["annotations"] = annotations
        docs: list[tuple[dict[str, Any], str | None]] = [
            ({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": sa_meta}, "Identity of the refresher"),
        ]
        for namespace in namespaces:
            docs.append(
                (
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "Role",
                        "metadata": _metadata(name, namespace),
                        "rules": [
                            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
                            {
                                "apiGroups": [""],
                                "resources": ["secrets"],
                                "resourceNames": [secret_name],
                                "verbs": ["get", "update"],
                            },
                        ],
                    },
                    None,
                )
            )
            docs.append(
                (
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "RoleBinding",
                        "metadata": _metadata(name, namespace),
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                        "subjects": [
                            {"kind": "ServiceAccount", "name": self.service_account, "namespace": self.namespace}
                        ],
                    },
                    None,
                )
            )
        work_mount = [{"name": "work", "mountPath": WORK_DIR}]
        registry_host = docker_config_key(target.host)
        pod_spec = {
            "serviceAccountName": self.service_account,
            "restartPolicy": "Never",
            # the pod's own memory: the token never reaches the node's disk and vanishes with the pod
            "volumes": [{"name": "work", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
            "initContainers": [
                {
                    "name": "token",
                    "image": self.aws_cli_image,
                    "command": ["/bin/sh", "-c", _TOKEN_SCRIPT],
                    "env": [
                        {"name": "WORK_DIR", "value": WORK_DIR},
                        {"name": "AWS_REGION", "value": target.region},
                        {"name": "REGISTRY_HOST", "value": registry_host},
                    ],
                    "volumeMounts": work_mount,
                }
            ],
            "containers": [
                {
                    "name": "merge",
                    "image": self.python_image,
                    "command": ["python3", "-I", "-c", merge_program()],
                    "env": [
                        {"name": "WORK_DIR", "value": WORK_DIR},
                        {"name": "SECRET_NAME", "value": secret_name},
                        {"name": "REGISTRY_HOST", "value": registry_host},
                        {"name": "NAMESPACES", "value": " ".join(namespaces)},
                        {"name": "ADOPT", "value": "true" if self.adopt else "false"},
                    ],
                    "volumeMounts": work_mount,
                }
            ],
        }
        cronjob = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _metadata(name, self.namespace),
            "spec": {
                "schedule": self.schedule,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 600,
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 3,
                        "activeDeadlineSeconds": 600,
                        "template": {"metadata": {"labels": dict(MANAGED_BY)}, "spec": pod_spec},
                    }
                },
            },
        }
        comment = (
            f"Re-mints {secret_name} ({target.host}) in {len(namespaces)} namespace(s) on '{self.schedule}', "
            + ("merging into Secrets others created (adopt)" if self.adopt else "never touching Secrets others created")
            + f". First run: kubectl create job --from=cronjob/{name} {name}-first -n {self.namespace}"
        )
        docs.append((cronjob, comment))
        return docs


@dataclass(frozen=True)
class ExternalSecretsRefresher:
    """An ``ECRAuthorizationToken`` generator and an ``ExternalSecret`` per namespace (External Secrets Operator).

    Without ``service_account`` the generator uses the operator's own AWS identity; with it, the
    named ServiceAccount in each namespace (IRSA-annotated). ``role`` is assumed before the call.
    """

    refresh_interval: str = "1h"
    role: str | None = None
    service_account: str | None = None
    api_version: str = "external-secrets.io/v1"
    generator_api_version: str = "generators.external-secrets.io/v1alpha1"

    def __post_init__(self) -> None:
        if self.service_account is not None:
            check_kubernetes_name("ExternalSecretsRefresher(service_account=)", self.service_account)
        interval = self.refresh_interval
        if (
            not isinstance(interval, str)
            or re.fullmatch(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|ms|s|m|h))+", interval) is None
        ):
            raise ConfigurationError(
                f"ExternalSecretsRefresher(refresh_interval=) {interval!r} is not a duration such as '1h' or '30m'"
            )

    def manifests(
        self, secret_name: str, registries: Sequence[PrivateRegistry], namespaces: Sequence[str]
    ) -> list[tuple[dict[str, Any], str | None]]:
        target = _single_target(secret_name, registries)
        generator_name = f"{secret_name}-ecr-token"
        spec: dict[str, Any] = {"region": target.region}
        if self.role:
            spec["role"] = self.role
        if self.service_account:
            spec["auth"] = {"jwt": {"serviceAccountRef": {"name": self.service_account}}}
        key = docker_config_key(target.host)
        config = (
            '{"auths":{"' + key + '":{"username":"{{ .username }}","password":"{{ .password }}",'
            '"auth":"{{ printf "%s:%s" .username .password | b64enc }}"}}}'
        )
        docs: list[tuple[dict[str, Any], str | None]] = []
        for namespace in namespaces:
            docs.append(
                (
                    {
                        "apiVersion": self.generator_api_version,
                        "kind": "ECRAuthorizationToken",
                        "metadata": _metadata(generator_name, namespace),
                        "spec": spec,
                    },
                    f"Mints 12 h ECR tokens for {target.host} (account {target.account_id})",
                )
            )
            docs.append(
                (
                    {
                        "apiVersion": self.api_version,
                        "kind": "ExternalSecret",
                        "metadata": _metadata(secret_name, namespace),
                        "spec": {
                            "refreshInterval": self.refresh_interval,
                            "target": {
                                "name": secret_name,
                                "creationPolicy": "Owner",
                                "template": {
                                    "type": "kubernetes.io/dockerconfigjson",
                                    "engineVersion": "v2",
                                    "metadata": {"labels": dict(MANAGED_BY)},
                                    "data": {".dockerconfigjson": config},
                                },
                            },
                            "dataFrom": [
                                {
                                    "sourceRef": {
                                        "generatorRef": {
                                            "apiVersion": self.generator_api_version,
                                            "kind": "ECRAuthorizationToken",
                                            "name": generator_name,
                                        }
                                    }
                                }
                            ],
                        },
                    },
                    None,
                )
            )
        return docs
