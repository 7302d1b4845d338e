"""The one import guard for the ``kubernetes`` package, shared by everything that needs it.

``kubernetes`` is slow to import (~2 s), so it is imported only when a feature needs it: building a
task's PodTemplate, ``ClusterObjects.apply()`` and the pre-flight's cluster read. Should it be
missing (a trimmed environment, a task image built without it), the error says what to install.
"""

from __future__ import annotations

from typing import Any

from .._errors import MissingExtra

_FEATURES = (
    "Working with Kubernetes objects (a task's imagePullSecrets, ClusterObjects.apply(), the pre-flight's cluster read)"
)
_WHERE = ", also in the task image: task modules are imported there (and @dynamic compiles there)"


def import_kubernetes() -> Any:
    """The ``kubernetes`` package (``.client`` and ``.config`` loaded), or :class:`MissingExtra` naming the install."""
    try:
        import kubernetes
        import kubernetes.client
        import kubernetes.config
    except ImportError:
        raise MissingExtra(_FEATURES, where=_WHERE) from None
    return kubernetes
