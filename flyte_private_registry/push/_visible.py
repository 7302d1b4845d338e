"""The private repositories flytekit has already loaded, so one token request can cover them all.

Why: ``pyflyte package/register/run --remote`` imports every workflow module first, then asks
``ImageBuildEngine.build`` for one ImageSpec at a time while serializing. By the first call all
tasks (and so all their ImageSpecs) exist in ``FlyteEntities.entities``. Their repository names
(``registry`` + ``name``) are final then; their tags are not: flytekit sets ``source_root`` and
the copy mode from the serialization settings just before it builds each spec, and the tag
hashes those. So tokens are fetched for all repositories at once, and each image is checked
under the tag flytekit will register: when flytekit asks for it, or alongside by
:mod:`._lookahead`, which works the tags out with flytekit's own code from the specs listed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry

#: Repositories asked for at most in one prefetch (a run with more checks the rest one by one).
MAX_REPOSITORIES = 500


def _images(entity: Any, attributes: tuple[str, ...] = ("container_image", "_image")) -> list[Any]:
    """An entity's ImageSpec or image string: ``container_image`` (Python tasks), ``_image`` (ContainerTask)."""
    found = []
    for attribute in attributes:
        try:
            value = getattr(entity, attribute, None)
        except Exception:  # a property of someone else's task must not break serialization
            continue
        if value is not None:
            found.append(value)
    return found


def visible_specs(registry: PrivateRegistry, limit: int) -> list[Any]:
    """Distinct ImageSpecs under ``registry`` that Python tasks flytekit has loaded run on (``container_image``).

    Only those: flytekit sets their copy handling from the serialization settings before it
    builds them, which :mod:`._lookahead` repeats on copies. A ContainerTask's spec is not.
    """
    from flytekit.core.context_manager import FlyteEntities
    from flytekit.image_spec.image_spec import ImageSpec

    from .._catalog import CATALOG

    found: dict[int, Any] = {}
    for spec in (i for entity in list(FlyteEntities.entities) for i in _images(entity, ("container_image",))):
        if len(found) >= limit:
            break
        if not isinstance(spec, ImageSpec) or id(spec) in found or not (spec.registry and spec.name):
            continue
        if CATALOG.for_spec(spec.registry, spec.name) is registry:
            found[id(spec)] = spec
    return list(found.values())


def visible_repositories(registry: PrivateRegistry, *extra: Any) -> list[str]:
    """Repositories under ``registry`` of every ImageSpec (and base image) flytekit has loaded, plus ``extra`` specs."""
    from flytekit.core.context_manager import FlyteEntities
    from flytekit.image_spec.image_spec import ImageSpec

    from .._catalog import CATALOG
    from .._errors import FlytePrivateRegistryError
    from .._reference import ImageReference

    repositories: dict[str, None] = {}

    def add(image: str, declared: PrivateRegistry | None) -> None:
        if declared is not registry:
            return
        try:
            repositories[ImageReference.parse(image).repository] = None
        except (FlytePrivateRegistryError, ValueError):
            return

    for image in [*extra, *(i for entity in list(FlyteEntities.entities) for i in _images(entity))]:
        if len(repositories) >= MAX_REPOSITORIES:
            break
        if isinstance(image, ImageSpec):
            if image.registry and image.name:
                add(f"{image.registry}/{image.name}:latest", CATALOG.for_spec(image.registry, image.name))
            if isinstance(image.base_image, str):
                add(image.base_image, CATALOG.for_image(image.base_image))
    return list(repositories)
