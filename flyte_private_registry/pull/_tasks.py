"""Pull secrets on tasks: which images a task pulls, which registries cover them, and the merged pod template.

Everything here runs when a task is *defined* (module import), because flytekit serializes
``task.pod_template`` into ``TaskTemplate.k8s_pod`` and hashes it into the registration
version: a secret added later would register a different task than the one that was defined.

Nothing here resolves a credential. Defining a task only needs the Secret's *name*, so task
modules import fine inside the task container (``@dynamic`` compiles sub-tasks there).

Nor does defining a task import ``kubernetes`` (~0.5 s CPU, paid at registration and again in every
task container): the template is a :class:`DeferredPodTemplate`, whose ``V1PodSpec`` is built the
first time flytekit reads ``pod_spec``, which it does only to serialize or hash the task.

Merging never mutates the user's ``PodTemplate`` (one template is often shared by several
tasks, and mutating it would change the version of tasks that have no private image). The copy
keeps every container, volume, toleration, label, annotation and pull secret; ours are appended
only when missing.
"""

from __future__ import annotations

import copy
import importlib.util
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flytekit.core.pod_template import PodTemplate

from .._catalog import CATALOG
from .._errors import ConfigurationError
from .._reference import InvalidReference, RegistryPrefix
from ._k8s_import import import_kubernetes

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry

#: flytekit's placeholder for images given by ``--image name=...`` / the default image.
_TEMPLATED_IMAGE = "{{.image."


def kubernetes_models() -> Any:
    """``kubernetes.client`` (slow to import: ~2 s), or an error that names the extra to install."""
    return import_kubernetes().client


def require_kubernetes() -> None:
    """Fail now, with the extra to install, if ``kubernetes`` is missing; without importing it.

    The pod spec is built later (at serialization), but a missing extra should surface where the
    task is defined, as it did when the spec was built eagerly.
    """
    try:
        found = importlib.util.find_spec("kubernetes") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        import_kubernetes()  # raises the one shared MissingExtra


# -- the deferred pod template -----------------------------------------------------------------
_BUILD_LOCK = threading.Lock()


def _with_secrets(spec: Any, secret_names: Sequence[str]) -> Any:
    """``spec`` (or a new empty ``V1PodSpec``) with ``secret_names`` appended to its pull secrets, each once."""
    client = kubernetes_models()
    if spec is None:
        spec = client.V1PodSpec(containers=[])
    existing = list(spec.image_pull_secrets or [])
    present = {_secret_name(ref) for ref in existing}
    for name in secret_names:
        if name not in present:
            existing.append(client.V1LocalObjectReference(name=name))
            present.add(name)
    spec.image_pull_secrets = existing or None
    return spec


class DeferredPodTemplate(PodTemplate):
    """A flytekit ``PodTemplate`` whose ``V1PodSpec`` is built on the first read of ``pod_spec``.

    flytekit reads ``pod_spec`` only to serialize (``_serialize_pod_spec``, ``K8sPod``) or hash
    (``version_hash``) a task, and that imports ``kubernetes`` anyway; defining or running a task
    does not read it. Until then the template holds a recipe: the base spec (a private copy, or
    ``None`` for an empty one) and the pull secret names to append. Not a new dataclass: its fields
    are ``PodTemplate``'s, so ``asdict``, ``version_hash`` and the serialized TaskTemplate are the
    ones an eagerly built ``PodTemplate`` gives, byte for byte.
    """

    @property  # type: ignore[override]
    def pod_spec(self) -> Any:
        state = self.__dict__
        if "_recipe" in state:
            with _BUILD_LOCK:
                recipe = state.get("_recipe")
                if recipe is not None:
                    state["_spec"] = _with_secrets(*recipe)
                    del state["_recipe"]
        return state.get("_spec")

    @pod_spec.setter
    def pod_spec(self, value: Any) -> None:
        self.__dict__.pop("_recipe", None)
        self.__dict__["_spec"] = value

    def __post_init__(self) -> None:
        # PodTemplate's would build an empty V1PodSpec (importing kubernetes) when none is given.
        if self.__dict__.get("_spec") is None:
            self.__dict__["_recipe"] = (None, ())
        if not self.primary_container_name:
            from flytekit.exceptions.user import FlyteValidationException

            raise FlyteValidationException("A primary container name cannot be undefined")

    def __eq__(self, other: object) -> bool:
        # PodTemplate's dataclass __eq__ only compares objects of the very same class.
        if not isinstance(other, PodTemplate):
            return NotImplemented
        return (self.pod_spec, self.primary_container_name, self.labels, self.annotations) == (
            other.pod_spec,
            other.primary_container_name,
            other.labels,
            other.annotations,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like PodTemplate

    @property
    def built(self) -> bool:
        """Whether the ``V1PodSpec`` exists yet (tests and benchmarks check that nothing forced it)."""
        return "_recipe" not in self.__dict__

    def peek(self) -> tuple[Any, tuple[str, ...]]:
        """The spec as it stands and the secret names still to append, without building anything."""
        with _BUILD_LOCK:
            recipe = self.__dict__.get("_recipe")
            if recipe is not None:
                return recipe
            return self.__dict__.get("_spec"), ()

    @classmethod
    def merged(cls, base: PodTemplate | None, secret_names: Sequence[str]) -> DeferredPodTemplate:
        """A template that will be ``base`` (copied now: it may be shared and changed later) plus ``secret_names``."""
        if base is None:
            template = cls()
            spec, pending = None, ()
        else:
            template = cls(
                primary_container_name=base.primary_container_name,
                labels=copy.deepcopy(base.labels),
                annotations=copy.deepcopy(base.annotations),
            )
            spec, pending = _peek(base)
            spec = copy.deepcopy(spec)
        names = list(pending)
        names.extend(name for name in secret_names if name not in names)
        template.__dict__.pop("_spec", None)
        template.__dict__["_recipe"] = (spec, tuple(names))
        return template


def _peek(template: Any) -> tuple[Any, tuple[str, ...]]:
    """A template's spec and pending secret names; never forces a deferred spec to be built."""
    if isinstance(template, DeferredPodTemplate):
        return template.peek()
    return getattr(template, "pod_spec", None), ()


# -- which registry covers an image ------------------------------------------------------------
def _registry_for_spec(spec: Any, default: PrivateRegistry | None) -> PrivateRegistry | None:
    found = CATALOG.for_spec(spec.registry, spec.name)
    if found is None and default is not None and spec.registry:
        try:
            prefix = RegistryPrefix.parse(spec.registry, require_host=False)
        except InvalidReference:
            return None
        repository = f"{prefix.path}/{spec.name}" if prefix.path else spec.name
        if default.reference.covers(prefix.host, repository):
            return default
    return found


def noop_base(spec: Any) -> str | None:
    """The image a ``builder="noop"`` ImageSpec really runs: its ``base_image`` string (``None`` otherwise).

    flytekit's noop builder builds nothing and maps the spec's name to ``base_image``, so the node
    pulls the base and needs *its* registry's secret (a public base keeps the spec's registry: one
    secret too many is harmless). Any other builder puts the base's layers into the pushed image:
    the node never pulls the base by name and needs no secret for it.
    """
    base = getattr(spec, "base_image", None)
    return base if getattr(spec, "builder", None) == "noop" and isinstance(base, str) else None


def registry_for_image(image: Any, default: PrivateRegistry | None = None) -> PrivateRegistry | None:
    """The declared registry an image (string or ImageSpec) comes from; ``None`` for public images.

    ``None`` as the image (the task takes ``--image``'s default) and flytekit's ``{{.image.x}}``
    placeholders resolve to ``default``: those are only known at serialization, and the user
    who wrote ``@reg.task`` said the task's image is in ``reg``.
    """
    if image is None:
        return default
    if hasattr(image, "image_name") and hasattr(image, "registry"):  # an ImageSpec
        base = noop_base(image)  # flytekit's noop builder runs the base image itself: that is what is pulled
        found = CATALOG.for_image(base) if base is not None else None
        return found if found is not None else _registry_for_spec(image, default)
    if not isinstance(image, str):
        return None
    if image.startswith(_TEMPLATED_IMAGE):
        return default
    found = CATALOG.for_image(image)
    if found is None and default is not None:
        try:
            if default.covers(image):
                return default
        except InvalidReference:
            return None
    return found


# -- what a task pulls -------------------------------------------------------------------------
def inner_task(task: Any) -> Any:
    """The task whose pod template is serialized: a map task delegates to the mapped task."""
    for attribute in ("python_function_task", "run_task"):
        inner = getattr(task, attribute, None)
        if inner is not None and hasattr(inner, "pod_template"):
            return inner
    return task


def primary_image(task: Any) -> Any:
    """The task's own image: ``container_image`` (Python tasks) or ``_image`` (``ContainerTask``)."""
    if hasattr(task, "container_image"):
        return task.container_image
    return getattr(task, "_image", None)


def _containers(pod_template: Any) -> tuple[list[Any], list[Any]]:
    """The template's ``containers`` and ``init_containers`` (empty lists when it has no spec)."""
    spec, _ = _peek(pod_template)
    if spec is None:
        return [], []
    return list(getattr(spec, "containers", None) or []), list(getattr(spec, "init_containers", None) or [])


def images_pulled_by(primary: Any, pod_template: Any) -> list[Any]:
    """Every image a pod pulls: the primary one, the pod template's sidecars and its init containers.

    A primary container in the pod template that names its own image replaces the task's image
    (flytekit's ``_serialize_pod_spec`` does the same, looking at ``containers`` only: an init
    container never stands for the primary, whatever its name). A private *base image* of an
    ImageSpec is not here on purpose: its layers are inside the pushed image and the node never
    pulls the base by its own name, so it needs no pull secret (only the build needs its credentials).
    """
    primary_name = getattr(pod_template, "primary_container_name", None)
    containers, init_containers = _containers(pod_template)
    images: list[Any] = []
    primary_overridden = False
    for container in containers:
        image = getattr(container, "image", None)
        if container.name == primary_name:
            primary_overridden = image is not None
        if image is not None:
            images.append(image)
    images.extend(image for image in (getattr(c, "image", None) for c in init_containers) if image is not None)
    if not primary_overridden:
        images.insert(0, primary)
    return images


def pulled_images(task: Any) -> list[Any]:
    """:func:`images_pulled_by` for an existing task (a map task answers for the mapped task)."""
    task = inner_task(task)
    return images_pulled_by(primary_image(task), getattr(task, "pod_template", None))


def secret_names_for_images(images: Iterable[Any], default: PrivateRegistry | None = None) -> list[str]:
    """Pull secret names for these images, in a stable order, each once."""
    names: list[str] = []
    for image in images:
        registry = registry_for_image(image, default)
        if registry is not None and registry.pull_secret_name not in names:
            names.append(registry.pull_secret_name)
    return names


def secret_names_for(task: Any, default: PrivateRegistry | None = None) -> list[str]:
    """Pull secret names a task needs."""
    return secret_names_for_images(pulled_images(task), default)


# -- merging -----------------------------------------------------------------------------------
def merge_pod_template(base: PodTemplate | None, secret_names: Sequence[str]) -> PodTemplate:
    """A copy of ``base`` (or a new template) whose pod spec also lists ``secret_names``.

    The user's containers, volumes, tolerations, labels, annotations and pull secrets are kept
    as they are; a name already listed is not added again. The ``V1PodSpec`` itself is built
    when flytekit first reads it (see :class:`DeferredPodTemplate`).
    """
    require_kubernetes()
    return DeferredPodTemplate.merged(base, secret_names)


def _secret_name(ref: Any) -> str | None:
    return ref.get("name") if isinstance(ref, dict) else getattr(ref, "name", None)


def listed_secrets(task: Any) -> list[str]:
    """Pull secret names already in a task's pod template."""
    return _listed_in(getattr(inner_task(task), "pod_template", None))


def _listed_in(template: Any) -> list[str]:
    spec, pending = _peek(template)
    refs: Iterable[Any] = getattr(spec, "image_pull_secrets", None) or []
    names = [name for name in (_secret_name(ref) for ref in refs) if name]
    return names + [name for name in pending if name not in names]


# -- attaching ---------------------------------------------------------------------------------
def _set_pod_template_name(task: Any, name: str) -> None:
    tasks = [task] if inner_task(task) is task else [task, inner_task(task)]
    for each in tasks:
        metadata = getattr(each, "metadata", None)
        if metadata is None:
            raise TypeError(f"{type(each).__name__} has no task metadata to carry pod_template_name")
        current = metadata.pod_template_name
        if current not in (None, "", name):
            raise ConfigurationError(
                f"task {getattr(each, 'name', each)!r} already uses pod_template_name={current!r}; "
                f"it cannot also reference {name!r}. Put the pull secret in {current!r} instead "
                f"(render it with cluster_objects(pod_template={current!r}))."
            )
        metadata.pod_template_name = name


def attach(task: Any, default: PrivateRegistry | None = None, *, via_pod_template_name: str | None = None) -> Any:
    """Give ``task`` the pull secrets its images need; returns the same task (usable as a decorator).

    With ``via_pod_template_name`` the task instead references that PodTemplate in the cluster
    (``TaskMetadata.pod_template_name``), which must carry the pull secrets itself. A task with no
    private image is returned untouched either way.
    """
    target = inner_task(task)
    if not hasattr(target, "pod_template"):
        raise TypeError(
            f"cannot attach pull secrets to {type(task).__name__}: only container tasks (@task, @dynamic, "
            "map_task, ContainerTask) have a pod template"
        )
    names = secret_names_for(target, default)
    if not names:
        return task
    if via_pod_template_name is not None:
        _set_pod_template_name(task, via_pod_template_name)
        return task
    if all(name in listed_secrets(target) for name in names):
        return task  # idempotent: nothing to add, keep the user's object as is
    target.pod_template = merge_pod_template(target.pod_template, names)
    return task


def decorate(
    registry: PrivateRegistry,
    function: Any,
    kwargs: dict[str, Any],
    *,
    via_pod_template_name: str | None = None,
    dynamic: bool = False,
) -> Any:
    """``@reg.task`` / ``@reg.dynamic``: flytekit's decorator, given the merged pod template up front.

    The template is merged *before* flytekit builds the task, so the task is exactly what
    ``@task(pod_template=reg.pod_template(...))`` would give (cache version included).
    """
    import flytekit

    images = images_pulled_by(kwargs.get("container_image"), kwargs.get("pod_template"))
    names = secret_names_for_images(images, registry)
    if names and via_pod_template_name is not None:
        current = kwargs.get("pod_template_name")
        if current not in (None, via_pod_template_name):
            raise ConfigurationError(
                f"pod_template_name={current!r} and via_pod_template_name={via_pod_template_name!r} "
                "name two PodTemplates; a task references one. Put the pull secret in "
                f"{current!r} (cluster_objects(pod_template={current!r})) and drop via_pod_template_name."
            )
        kwargs = {**kwargs, "pod_template_name": via_pod_template_name}
    elif names:
        base = kwargs.get("pod_template")
        listed = _listed_in(base)
        if not all(name in listed for name in names):
            kwargs = {**kwargs, "pod_template": merge_pod_template(base, names)}
    decorator = flytekit.dynamic if dynamic else flytekit.task
    return decorator(function, **kwargs)
