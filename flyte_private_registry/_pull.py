"""Pull-side methods of ``PrivateRegistry`` (task decorator, pod templates, cluster objects, pre-flight).

Kept in its own module so the pull path grows without touching the declaration itself. Every
method imports its implementation lazily: this module loads whenever a registry is declared
(often at workflow import), so it must not pull in ``kubernetes`` (a 2 s import) until a pod
template is actually built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flytekit.core.pod_template import PodTemplate

    from ._kube import ClusterObjects
    from ._preflight import PreflightReport, SecretSource
    from ._refresher import Refresher

DEFAULT_DOMAINS: tuple[str, ...] = ("development", "staging", "production")
_UNSAFE = re.compile(r"[^a-z0-9.-]+")


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
        from ._tasks import decorate

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
        from ._tasks import decorate

        return decorate(self, _task_function, kwargs, via_pod_template_name=via_pod_template_name, dynamic=True)  # type: ignore[arg-type]

    def pod_template(self, base: PodTemplate | None = None) -> PodTemplate:
        """A copy of ``base`` (or a new ``PodTemplate``) that also lists this registry's pull secret."""
        from ._tasks import merge_pod_template

        return merge_pod_template(base, [self.pull_secret_name])

    def attach(self, task: Any, *, via_pod_template_name: str | None = None) -> Any:
        """Add the pull secrets an existing task needs (map tasks, ``ContainerTask``, ...); returns the task.

        Works as a decorator above ``@dynamic``/``@task``. Tasks whose images are all public are
        returned untouched.
        """
        from ._tasks import attach

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
        from ._kube import cluster_objects

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
        from ._preflight import preflight

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
