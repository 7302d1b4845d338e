"""``PrivateRegistry``: one declaration that the push path, the helper and the pull path all read.

The pull-side methods (``reg.task``, ``reg.pod_template``, ``reg.cluster_objects``,
``reg.preflight``) hand off to ``pull/`` with local imports: the one import that points from the
core to a layer above it, so declaring a registry never loads ``kubernetes`` (a 2 s import).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._platform import parse_platforms
from ._reference import ImageReference, InvalidReference, RegistryPrefix, kubernetes_name_problem
from .providers._constructors import ProviderConstructors

if TYPE_CHECKING:
    from flytekit.core.pod_template import PodTemplate
    from pydantic import ValidationError

    from .credentials import Keychain, Resolution, Secret
    from .distribution import RegistryClient
    from .providers import Provider
    from .pull._objects import ClusterObjects
    from .pull._preflight import PreflightReport, SecretSource
    from .pull._refresher import Refresher

#: POSIX shell variable names, matched whole (``fullmatch``) and ASCII only.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_UNSAFE = re.compile(r"[^a-z0-9.-]+")


_declaring: ContextVar[bool] = ContextVar("_declaring", default=True)
_declared: dict[str, PrivateRegistry] = {}
_declared_lock = threading.Lock()


@contextmanager
def not_declaring() -> Iterator[None]:
    """Build ``PrivateRegistry`` objects (from a config file, for a lookup) without declaring them."""
    token = _declaring.set(False)
    try:
        yield
    finally:
        _declaring.reset(token)


def declared() -> dict[str, PrivateRegistry]:
    """The registries declared in code so far, by prefix (the catalog merges them over config files)."""
    with _declared_lock:
        return dict(_declared)


def _declaring_module() -> tuple[str | None, str | None]:
    """The name and file of the module declaring a registry (the first caller outside this package).

    Why: when the registry refuses a login during ``pyflyte``, the error names the command that
    shows where the credentials came from, and for a declaration in code that command has to
    import the same module (``-m``). A walk up a frame or two: cheap enough for every declaration.
    """
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).partition(".")[0] == __package__:
        frame = frame.f_back
    if frame is None:
        return None, None
    name, path = frame.f_globals.get("__name__"), frame.f_globals.get("__file__")
    return (name if isinstance(name, str) else None), (path if isinstance(path, str) else None)


def _module_argument(name: str | None, path: str | None) -> str | None:
    """What ``-m`` takes to import that module from here, the way ``pyflyte`` did.

    Its dotted name when its top package is in the working directory (``pyflyte --pkgs`` imports
    it so, relative imports included), else its file (``pyflyte run path/to/wf.py``, scripts).
    """
    importable = bool(name) and name != "__main__" and all(part.isidentifier() for part in str(name).split("."))
    try:
        here = Path.cwd()
        if importable:
            top = str(name).partition(".")[0]
            if (here / top).is_dir() or (here / f"{top}.py").is_file():
                return name
        if path and Path(path).resolve().is_relative_to(here.resolve()):
            return os.path.relpath(path)
    except OSError:  # a working directory removed meanwhile: the hint must not become the error
        pass
    return path or (name if importable else None)


def forget_declared() -> None:
    with _declared_lock:
        _declared.clear()


DEFAULT_DOMAINS: tuple[str, ...] = ("development", "staging", "production")


def default_secret_name(prefix: str) -> str:
    """``harbor.example.com/ml`` -> ``harbor.example.com-ml-pull``: stable, a valid Kubernetes name."""
    slug = _UNSAFE.sub("-", prefix.lower()).strip("-.")
    return f"{slug[:240].rstrip('-.')}-pull"


class PullSide:
    """Mixed into ``PrivateRegistry``; methods here read ``self.pull_secret`` and friends."""

    if TYPE_CHECKING:  # fields of PrivateRegistry, declared there
        prefix: str
        pull_secret: str | None

    @property
    def pull_secret_name(self) -> str:
        """The Secret tasks reference: ``pull_secret=`` if given, else derived from the prefix."""
        return self.pull_secret or default_secret_name(self.prefix)

    # -- tasks -------------------------------------------------------------------------------
    def task(
        self,
        _task_function: Callable[..., Any] | None = None,
        /,
        *,
        via_pod_template_name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``flytekit.task`` with this registry's pull secret in the pod template when the task's image is private.

        Takes flytekit's arguments unchanged. A task without ``container_image`` takes its image
        from ``--image`` at serialization, which cannot be seen now: it is assumed to be in this
        registry. ``via_pod_template_name`` references a cluster PodTemplate holding the secret
        instead of embedding it (render one with :meth:`cluster_objects`).
        """
        from .pull._tasks import decorate

        return decorate(self, _task_function, kwargs, via_pod_template_name=via_pod_template_name)  # type: ignore[arg-type]

    def dynamic(
        self,
        _task_function: Callable[..., Any] | None = None,
        /,
        *,
        via_pod_template_name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``flytekit.dynamic`` with the pull secret; the library must be installed in the task image.

        The sub-workflow is compiled inside the container, re-importing the modules that define
        its tasks, so their ``@reg.task`` decorators run there too.
        """
        from .pull._tasks import decorate

        return decorate(self, _task_function, kwargs, via_pod_template_name=via_pod_template_name, dynamic=True)  # type: ignore[arg-type]

    def pod_template(self, base: PodTemplate | None = None) -> PodTemplate:
        """A copy of ``base`` (or a new ``PodTemplate``) that also lists this registry's pull secret."""
        from .pull._tasks import merge_pod_template

        return merge_pod_template(base, [self.pull_secret_name])

    def attach(self, task: Any, *, via_pod_template_name: str | None = None) -> Any:
        """Add the pull secrets an existing task needs (map tasks, ``ContainerTask``, ...); returns the task.

        Works as a decorator above ``@dynamic``/``@task``. Tasks whose images are all public are
        returned untouched.
        """
        from .pull._tasks import attach

        return attach(task, self, via_pod_template_name=via_pod_template_name)  # type: ignore[arg-type]

    # -- cluster objects ---------------------------------------------------------------------
    def cluster_objects(
        self,
        *,
        projects: Iterable[str] = (),
        domains: Iterable[str] = DEFAULT_DOMAINS,
        namespaces: Iterable[str] = (),
        service_account: str | Sequence[str] | None = None,
        pod_template: str | None = None,
        propeller_namespace: str = "flyte",
        refresher: Refresher | None = None,
        allow_short_lived: bool = False,
    ) -> ClusterObjects:
        """The Secret for every ``<project>-<domain>`` namespace, plus optional SA patch and PodTemplate.

        See :func:`flyte_private_registry.cluster_objects`; nothing is written or printed here.
        """
        from .pull._objects import cluster_objects

        return cluster_objects(
            [self],  # type: ignore[list-item]
            projects=projects,
            domains=domains,
            namespaces=namespaces,
            service_account=service_account,
            pod_template=pod_template,
            propeller_namespace=propeller_namespace,
            refresher=refresher,
            allow_short_lived=allow_short_lived,
        )

    # -- pre-flight --------------------------------------------------------------------------
    def preflight(
        self,
        targets: Iterable[Any],
        *,
        projects: Iterable[str] = (),
        domains: Iterable[str] = DEFAULT_DOMAINS,
        namespaces: Iterable[str] = (),
        secrets: Mapping[str, Iterable[Any]] | SecretSource | None = None,
        api_client: Any = None,
        default_image: str | None = None,
    ) -> PreflightReport:
        """Can each namespace pull each image (or task's images)? See :func:`flyte_private_registry.preflight`."""
        from .pull._preflight import preflight

        return preflight(
            targets,
            projects=projects,
            domains=domains,
            namespaces=namespaces,
            secrets=secrets,
            api_client=api_client,
            default=self,  # type: ignore[arg-type]
            default_image=default_image,
        )


#: Declaration keys that hold plain text, and the two that hold secrets (never echoed in a message).
_TEXT_KEYS = (
    "username",
    "username_env",
    "password_env",
    "pull_secret",
    "pull_username",
    "pull_password_env",
    "builder",
)
_SECRET_KEYS = ("password", "pull_password")
_ENV_KEYS = ("username_env", "password_env", "pull_password_env")


def describe_value(value: object, *, secret: bool = False) -> str:
    """``int 5``: the type and (unless secret) the repr, so a stray newline or a wrong type is visible."""
    return type(value).__name__ if secret else f"{type(value).__name__} {value!r}"


def validation_message(err: ValidationError, *, secret_keys: Sequence[str] = _SECRET_KEYS) -> str:
    """pydantic's error wall as one line per field: ``insecure: Input should be a valid boolean, got str 'x'``."""
    lines = []
    for problem in err.errors(include_url=False):
        key = ".".join(str(part) for part in problem["loc"]) or "value"
        secret = any(part in secret_keys for part in problem["loc"])
        lines.append(f"{key}: {problem['msg']}, got {describe_value(problem.get('input'), secret=secret)}")
    return "; ".join(lines)


def _check_types(data: dict[str, Any]) -> None:
    """Wrong types first, each named with the key and the expected type (a config file gives anything)."""
    unknown = sorted(key for key in data if key not in PrivateRegistry.FIELDS)
    if unknown:
        raise ConfigurationError(
            f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(PrivateRegistry.FIELDS)}"
        )
    prefix = data.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise ConfigurationError(
            f"prefix must be a string such as 'harbor.example.com/ml', got {describe_value(prefix)}"
        )
    for key in _TEXT_KEYS:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{key} must be a string, got {describe_value(value)}")
    for key in _SECRET_KEYS:
        value = data.get(key)
        if value is not None and not isinstance(value, str) and not _is_secret(value):
            raise ConfigurationError(f"{key} must be a string, got {describe_value(value, secret=True)}")
    for flag in ("insecure", "pin_digest"):
        value = data.get(flag)
        if value is not None and not isinstance(value, bool):
            raise ConfigurationError(f"{flag} must be true or false, got {describe_value(value)}")
    ca_file = data.get("ca_file")
    if ca_file is not None and not isinstance(ca_file, (str, os.PathLike)):
        raise ConfigurationError(f"ca_file must be a path (a string), got {describe_value(ca_file)}")
    provider = data.get("provider")
    if provider is not None and not _is_provider(provider):
        raise ConfigurationError(
            "provider must be a Provider such as EcrProvider() (or use PrivateRegistry.ecr(...)), "
            f"got {describe_value(provider)}"
        )
    keychains = data.get("keychains")
    if isinstance(keychains, Iterable) and not isinstance(keychains, (str, bytes, Mapping)):
        keychains = data["keychains"] = tuple(keychains)  # a generator is read once, here
    if keychains is not None and (not isinstance(keychains, tuple) or not all(map(_is_keychain, keychains))):
        raise ConfigurationError(
            "keychains must be a list of Keychain objects (each with .name and .resolve()), "
            f"got {describe_value(keychains)}"
        )


# The type checks import their types only when such a value is given: a plain declaration
# (env var names, a prefix) never loads the credential sources or the providers.
def _is_secret(value: object) -> bool:
    """A ``Secret`` or pydantic's ``SecretStr`` (anything whose value only ``get_secret_value()`` gives)."""
    getter = getattr(value, "get_secret_value", None)
    return callable(getter) and isinstance(getter(), str)


def _is_provider(value: object) -> bool:
    from .providers import Provider

    return isinstance(value, Provider)


def _is_keychain(value: object) -> bool:
    from .credentials import Keychain

    return isinstance(value, Keychain)


def _name_fix(value: str, valid: Callable[[str], bool]) -> str:
    """The usual fix for a name that is almost right: surrounding whitespace or upper case."""
    if value != value.strip() and valid(value.strip()):
        return f"; remove the surrounding whitespace ({value.strip()!r})"
    if value != value.lower() and valid(value.lower()):
        return f"; use lower case ({value.lower()!r})"
    return ""


def _check_arguments(data: dict[str, Any]) -> None:
    """Reject bad declarations with a plain ``ConfigurationError`` (pydantic would wrap it)."""
    _check_types(data)
    try:
        data["prefix"] = str(RegistryPrefix.parse(data.get("prefix", "")))
    except InvalidReference as err:
        raise ConfigurationError(str(err)) from None
    prefix = data["prefix"]
    for key in _ENV_KEYS:
        value = data.get(key)
        if value is not None and not _ENV_NAME.fullmatch(value):
            fix = _name_fix(value, lambda v: _ENV_NAME.fullmatch(v) is not None)
            raise ConfigurationError(
                f"{key}={value!r} for {prefix} is not an environment variable name "
                f"(ASCII letters, digits and '_', not starting with a digit){fix}"
            )
    if data.get("password") is not None and data.get("password_env") is not None:
        raise ConfigurationError(f"{prefix}: give password= or password_env=, not both")
    if data.get("username") is not None and data.get("username_env") is not None:
        raise ConfigurationError(f"{prefix}: give username= or username_env=, not both")
    has_user = data.get("username") is not None or data.get("username_env") is not None
    has_password = data.get("password") is not None or data.get("password_env") is not None
    if has_password and not has_user:
        raise ConfigurationError(f"{prefix}: a password was given without username= or username_env=")
    if has_user and not has_password:
        which = "username_env=" if data.get("username_env") is not None else "username="
        raise ConfigurationError(f"{prefix}: {which} needs password= or password_env= next to it")
    has_pull_password = data.get("pull_password") is not None or data.get("pull_password_env") is not None
    if data.get("pull_password") is not None and data.get("pull_password_env") is not None:
        raise ConfigurationError(f"{prefix}: give pull_password= or pull_password_env=, not both")
    if has_pull_password != (data.get("pull_username") is not None):
        raise ConfigurationError(
            f"{prefix}: a read-only pull credential needs both pull_username= and pull_password(_env)="
        )
    secret = data.get("pull_secret")
    problem = kubernetes_name_problem(secret) if secret is not None else None
    if problem is not None:
        fix = _name_fix(secret, lambda v: kubernetes_name_problem(v) is None)
        raise ConfigurationError(
            f"pull_secret={secret!r} for {prefix} is not a Kubernetes object name: it {problem}{fix}"
        )
    platforms = data.get("platforms")
    if platforms is not None:  # "linux/amd64,linux/arm64" or a list; () turns the platform check off
        if not isinstance(platforms, (str, list, tuple)):
            raise ConfigurationError(
                f"platforms must be a list such as ['linux/amd64'], got {describe_value(platforms)}"
            )
        data["platforms"] = tuple(str(p) for p in parse_platforms(platforms))
    ca_file = data.get("ca_file")
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigurationError(f"ca_file {ca_file} for {prefix} does not exist")


#: Every argument ``PrivateRegistry`` takes, in order, with its default (``prefix`` has none).
_DEFAULTS: dict[str, Any] = {
    "username": None,
    "password": None,
    "username_env": None,
    "password_env": None,
    "pull_secret": None,
    "pull_username": None,
    "pull_password": None,
    "pull_password_env": None,
    "provider": None,
    "insecure": False,
    "ca_file": None,
    "builder": None,
    "keychains": (),
    "pin_digest": True,
    "platforms": None,
}


#: Where an argument is kept when not under its own name: ``provider`` is a property that infers it.
_STORED = {"provider": "_provider"}


class PrivateRegistry(ProviderConstructors, PullSide):
    """A registry prefix whose images need credentials to push and a pull secret to run.

    Constructing one declares it: every ImageSpec whose ``registry`` falls under ``prefix`` is
    built with these credentials (the longest declared prefix wins). Credentials are looked up
    in this order: explicit ``username``/``password``, the env vars named by ``username_env``/
    ``password_env``, extra ``keychains``, the provider's own sources, then the docker config.

    A plain frozen class, not a pydantic model: every field is checked by hand below (with
    messages that name the fix), and defining any pydantic model loads ~35 ms of pydantic that
    ``import flytekit`` has not, in every process that imports a workflow module, task pods too.
    """

    #: The argument names, in order (config files accept all but the secrets, provider and keychains).
    FIELDS: tuple[str, ...] = ("prefix", *_DEFAULTS)

    prefix: str
    username: str | None
    password: Secret | None
    username_env: str | None
    password_env: str | None
    pull_secret: str | None
    pull_username: str | None
    pull_password: Secret | None
    pull_password_env: str | None
    insecure: bool
    ca_file: Path | None
    builder: str | None
    keychains: tuple[Keychain, ...]
    #: Serialize tasks as ``name:tag@sha256:...`` (the digest checked at registration); see docs/digests.md.
    pin_digest: bool
    #: Platforms the cluster runs these images on; ``None``: each ImageSpec's ``platform``; ``()``: no check.
    platforms: tuple[str, ...] | None
    # name and file of the module that declared it in code (both ``None``: a config file's, or a copy)
    _declared_in: tuple[str | None, str | None]

    def __init__(self, prefix: str | None = None, /, **data: Any) -> None:
        if prefix is not None:
            data["prefix"] = prefix
        _check_arguments(data)
        values = {**_DEFAULTS, **data}
        for key in _SECRET_KEYS:
            if values[key] is not None:
                from .credentials import Secret  # only literal passwords load the credential sources

                values[key] = Secret.of(values[key])
        if values["ca_file"] is not None:
            values["ca_file"] = Path(values["ca_file"])
        for key, value in values.items():
            object.__setattr__(self, _STORED.get(key, key), value)
        declaring = _declaring.get()
        object.__setattr__(self, "_declared_in", _declaring_module() if declaring else (None, None))
        if declaring:
            with _declared_lock:
                _declared[self.prefix] = self

    @property
    def provider(self) -> Provider:
        """The provider given, else the one the host implies (``ghcr.io`` is GitHub), found on first use.

        Found lazily: telling the provider imports the provider modules, which a declaration that
        is only imported (a task pod importing the workflow module) never needs.
        """
        provider = self._provider
        if provider is None:
            from .providers import provider_for_host

            provider = provider_for_host(RegistryPrefix.parse(self.prefix).host)
            object.__setattr__(self, "_provider", provider)
        return provider

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"PrivateRegistry is frozen: declare a new one instead of setting {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PrivateRegistry is frozen: cannot delete {name}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, key) for key in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateRegistry):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def _given(self) -> dict[str, Any]:
        """The arguments as declared (the provider only if one was given or already inferred)."""
        return {key: getattr(self, _STORED.get(key, key)) for key in self.FIELDS}

    def __repr__(self) -> str:
        shown = [  # a Secret's repr is Secret('**********')
            f"{key}={value!r}" for key, value in self._given().items() if key == "prefix" or value != _DEFAULTS[key]
        ]
        return f"PrivateRegistry({', '.join(shown)})"

    def replace(self, **changes: Any) -> PrivateRegistry:
        """A copy with ``changes`` applied and checked like a new declaration (not declared)."""
        with not_declaring():
            return PrivateRegistry(**{**self._given(), **changes})

    # -- naming ------------------------------------------------------------------------------
    @property
    def registry(self) -> str:
        """The string to pass as ``ImageSpec(registry=...)``."""
        return self.prefix

    @property
    def reference(self) -> RegistryPrefix:
        return RegistryPrefix.parse(self.prefix)

    @property
    def host(self) -> str:
        return self.reference.host

    def repository(self, name: str) -> str:
        """Repository path of image ``name`` under this prefix (what the v2 API calls the name)."""
        path = self.reference.path
        return f"{path}/{name}" if path else name

    def covers(self, image: str) -> bool:
        """True when an image reference (or registry/name) lies under this prefix."""
        ref = ImageReference.parse(image)
        return self.reference.covers(ref.host, ref.repository)

    # -- credentials -------------------------------------------------------------------------
    def all_keychains(self) -> list[Keychain]:
        from .credentials import DockerConfigKeychain, EnvKeychain, StaticKeychain

        chain: list[Keychain] = []
        if self.username is not None and self.password is not None:
            chain.append(StaticKeychain(self.username, self.password))
        elif self.username is not None or self.username_env is not None:  # validated: a password is given too
            chain.append(
                EnvKeychain(
                    username_env=self.username_env,
                    username_literal=self.username,
                    password_env=self.password_env,
                    password_literal=self.password,
                )
            )
        chain.extend(self.keychains)
        chain.extend(self.provider.keychains(self))
        chain.append(DockerConfigKeychain())
        return chain

    def pull_keychains(self) -> list[Keychain]:
        """Sources for the cluster's pull secret: a read-only credential first, then the push chain."""
        from .credentials import EnvKeychain, StaticKeychain

        chain: list[Keychain] = []
        if self.pull_username is not None and self.pull_password is not None:
            chain.append(StaticKeychain(self.pull_username, self.pull_password, source="explicit pull credential"))
        elif self.pull_username is not None and self.pull_password_env is not None:
            chain.append(EnvKeychain(username_literal=self.pull_username, password_env=self.pull_password_env))
        chain.extend(self.provider.pull_keychains(self))
        # A push-only source (a CI job token) dies with the job: never let it become a pull secret.
        return chain + [k for k in self.all_keychains() if not getattr(k, "push_only", False)]

    def resolve_pull(self, *, exhaustive: bool = False) -> Resolution:
        """The credential to put in the cluster's pull secret (prefers read-only ones)."""
        from .credentials import resolve

        return resolve(self.pull_keychains(), self.reference, exhaustive=exhaustive)

    def resolve(self, *, exhaustive: bool = False) -> Resolution:
        """Which credential, from where; raises only for a broken declaration (missing env var)."""
        from .credentials import resolve

        return resolve(self.all_keychains(), self.reference, exhaustive=exhaustive)

    def explain(self) -> str:
        """Every source's answer for this registry, secrets left out."""
        return self.resolve(exhaustive=True).explain()

    def _explain_command(self) -> str:
        """The ``explain`` command that shows this registry's credential sources, with ``-m`` for a code declaration."""
        import shlex

        module = _module_argument(*getattr(self, "_declared_in", (None, None)))  # pickled by an older version
        option = f" -m {shlex.quote(module)}" if module else ""
        return f"flyte-private-registry{option} explain {self.prefix}"

    def client(self, *, actions: tuple[str, ...] = ("pull",), resolution: Resolution | None = None) -> RegistryClient:
        """A :class:`RegistryClient` logged in with the resolved credential (anonymous if none)."""
        from .distribution import RegistryClient

        resolution = resolution or self.resolve()
        return RegistryClient(
            self.host,
            resolution.credential,
            insecure=self.insecure,
            ca_file=self.ca_file,
            actions=actions,
            refusal_hint=self.provider.refusal_hint,
            explain_command=self._explain_command,
        )
