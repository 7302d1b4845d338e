"""Digest pinning and the platform check: tasks run exactly the image registration checked.

A tag moves (a re-push, a CI job reusing it, a mutable ECR tag, a stale mirror); a digest does
not. The existence check's authenticated ``HEAD`` already answers ``Docker-Content-Digest``, so
pinning costs no request: the builder records ``registry/name:tag@sha256:...`` in flytekit's
``ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME``, which ``ImageSpec.image_name()`` reads, and every
place flytekit serializes an ImageSpec (``@task``, ``map_task``, ``@dynamic``'s serialized context,
``ContainerTask``, ImageSpec files given to ``--image``) goes through ``image_name()``.

flytekit only fills that map from ``build_image``'s return value, and only when ``should_build``
said yes; an image that already exists is recorded here instead.

The platform check reads the pinned manifest: an index lists its platforms, a single manifest's
config blob names one. Digests are immutable, so the answer is cached per digest, in the process
and on disk (:mod:`._platform_cache`), with the digest each checked tag had: a tag checked before
is one ``HEAD``; a tag never seen is read with one ``GET``, whose body the platform check uses,
where a ``HEAD`` and then a ``GET`` of the same manifest would cost a request more.

Opting out: ``PrivateRegistry(pin_digest=False)``, ``ImageSpec(builder_options={"pin_digest": False})``
or ``FLYTE_PRIVATE_REGISTRY_PIN_DIGEST=false``; platforms: ``PrivateRegistry(platforms=[...])`` or
``builder_options={"platforms": [...]}`` (empty: no check). See ``docs/digests.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec

from .._errors import ConfigurationError, RegistryError
from .._platform import Platform, parse_platforms
from . import _platform_cache

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry
    from ..distribution import RegistryClient
    from ..distribution._auth import Manifest
    from ..distribution._quick import QuickChecker

ENV_PIN = "FLYTE_PRIVATE_REGISTRY_PIN_DIGEST"
#: ``ImageSpec(builder_options={...})`` keys read here (ImageSpec has no free field of its own).
OPTION_PIN = "pin_digest"
OPTION_PLATFORMS = "platforms"
_FALSE = ("0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")


def plain_name(spec: ImageSpec) -> str:
    """``registry/name:tag`` as ``ImageSpec.image_name()`` computes it before any mapping.

    The key of ``_IMAGE_NAME_TO_REAL_NAME``; ``image_name()`` itself answers the pinned name once
    one is recorded, which is not what an existence check by tag or a ``docker build --tag`` wants.
    """
    name = f"{spec.name}:{spec.tag}"
    return f"{spec.registry}/{name}" if spec.registry else name


def unpinned(image: str) -> str:
    return image.split("@", 1)[0]


def pinned_reference(image: str, digest: str) -> str:
    """``registry/name:tag@sha256:...``: the tag stays for people reading it, the digest is what is pulled."""
    return f"{unpinned(image)}@{digest}"


def _option(spec: ImageSpec, key: str) -> Any:
    options = spec.builder_options or {}
    return options.get(key)


def pin_wanted(registry: PrivateRegistry, spec: ImageSpec) -> bool:
    """Most specific first: ``builder_options["pin_digest"]``, ``$FLYTE_PRIVATE_REGISTRY_PIN_DIGEST``, the registry."""
    option = _option(spec, OPTION_PIN)
    if option is not None:
        if not isinstance(option, bool):
            raise ConfigurationError(
                f"ImageSpec {spec.name!r}: builder_options[{OPTION_PIN!r}] must be True or False, got {option!r}"
            )
        return option
    env = os.environ.get(ENV_PIN, "").strip().lower()
    if env in _FALSE:
        return False
    if env in _TRUE:
        return True
    if env:
        raise ConfigurationError(f"{ENV_PIN}={env!r}: use true or false")
    return registry.pin_digest


def wanted_platforms(registry: PrivateRegistry, spec: ImageSpec) -> tuple[Platform, ...]:
    """Where the tasks run: ``builder_options["platforms"]``, else the registry's, else ``ImageSpec.platform``.

    flytekit defaults ``ImageSpec.platform`` to ``linux/amd64`` (the platform it builds for), so a
    plain spec is checked for that.
    """
    option = _option(spec, OPTION_PLATFORMS)
    if option is not None:
        try:
            return parse_platforms(option)
        except ConfigurationError as err:
            raise ConfigurationError(f"ImageSpec {spec.name!r}: builder_options[{OPTION_PLATFORMS!r}]: {err}") from None
    if registry.platforms is not None:
        return parse_platforms(registry.platforms)
    return parse_platforms(spec.platform or "linux/amd64")


def record(spec: ImageSpec, reference: str) -> None:
    """Make ``spec.image_name()`` answer ``reference`` for the rest of the process."""
    ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME[plain_name(spec)] = reference


def forget(spec: ImageSpec) -> None:
    """Drop an earlier pin: before a rebuild (the builder tags by ``image_name()``) or when pinning is off."""
    ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME.pop(plain_name(spec), None)


# -- platforms ------------------------------------------------------------------------------------
def gone(image: str, digest: str, host: str) -> RegistryError:
    """The error for a pinned digest the registry no longer has (better now than an ImagePullBackOff)."""
    return RegistryError(
        f"image {unpinned(image)} is pinned to {digest}, which registry {host} no longer has (deleted, or "
        "garbage-collected after the tag moved): a pod would fail with ImagePullBackOff. Build or push the "
        "image again, or drop the @digest to use what the tag names now.",
        host=host,
        status=404,
    )


def platforms_of(
    client: Callable[[], RegistryClient],
    image: str,
    repository: str,
    digest: str,
    quick: QuickChecker | None = None,
) -> tuple[Platform, ...]:
    """The platforms manifest ``digest`` serves: an index's entries, or a single manifest's config blob.

    A cached answer makes no request; otherwise ``quick`` (the stdlib path) reads the manifest and
    config, and ``client`` is called only when it cannot: a first run stays without httpx.
    """
    found = read_platforms(quick, repository, digest) if quick is not None else _platform_cache.platforms(digest)
    if found is not None:
        return found
    return _platform_cache.keep(digest, _full_platforms(client(), image, repository, digest))


def learn_platforms(quick: QuickChecker, repository: str, manifest: Manifest) -> None:
    """Platforms of a manifest already in hand (the existence check's ``GET``): the check then reads no manifest.

    Kept in memory only: once the check passes, the tag's cache entry carries them to the next
    run. Anything the stdlib path cannot read cleanly is left for :func:`platforms_of`, which explains it.
    """
    if _platform_cache.platforms(manifest.digest) is not None:  # another tag of the same image
        return
    found = _manifest_platforms(quick, repository, manifest)
    if found is not None:
        _platform_cache.keep(manifest.digest, found, disk=False)


def check_tag(
    quick: QuickChecker,
    repository: str,
    reference: str,
    *,
    read: bool,
    batch: Callable[[], Iterable[str]] | None = None,
) -> object:
    """The stdlib existence check: a digest, ``None`` for a 404, or ``UNKNOWN`` (the full client's turn).

    With ``read``, the manifest is fetched by ``GET`` rather than ``HEAD`` and its body feeds the
    platform check: a tag checked for the first time costs two requests, not three.
    """
    if not read:
        return quick.manifest_digest(repository, reference, batch=batch)  # a warm HEAD loads no challenge rules
    from ..distribution._auth import Manifest

    manifest = quick.manifest(repository, reference, batch=batch, check=True)
    if isinstance(manifest, Manifest):
        learn_platforms(quick, repository, manifest)
        return manifest.digest
    return manifest


def read_platforms(quick: QuickChecker, repository: str, digest: str) -> tuple[Platform, ...] | None:
    """The platforms of ``digest`` from the cache or the stdlib path (kept); ``None`` when it cannot read them."""
    cached = _platform_cache.platforms(digest)
    if cached is not None:
        return cached
    found = _quick_platforms(quick, repository, digest)
    return _platform_cache.keep(digest, found) if found is not None else None


def _index_platforms(manifest: Manifest) -> list[Platform]:
    found = []
    for entry in manifest.document.get("manifests") or []:
        platform = Platform.from_json(entry.get("platform") or {}) if isinstance(entry, dict) else None
        if platform is not None and not platform.unknown:  # buildx attestations say unknown/unknown
            found.append(platform)
    return found


def _config_digest(manifest: Manifest) -> str | None:
    config = manifest.document.get("config")
    config_digest = config.get("digest") if isinstance(config, dict) else None
    return config_digest if isinstance(config_digest, str) else None


def _quick_platforms(quick: QuickChecker, repository: str, digest: str) -> list[Platform] | None:
    """The stdlib path's answer; ``None`` for anything it cannot read cleanly (the full client then explains)."""
    from ..distribution._auth import Manifest

    manifest = quick.manifest(repository, digest)
    if not isinstance(manifest, Manifest):
        return None
    return _manifest_platforms(quick, repository, manifest)


def _manifest_platforms(quick: QuickChecker, repository: str, manifest: Manifest) -> list[Platform] | None:
    if manifest.is_index:
        return _index_platforms(manifest)
    config_digest = _config_digest(manifest)
    config = quick.blob_json(repository, config_digest) if config_digest is not None else None
    if not isinstance(config, dict):
        return None
    platform = Platform.from_json(config)
    return [platform] if platform is not None else []


def _full_platforms(registry: RegistryClient, image: str, repository: str, digest: str) -> list[Platform]:
    manifest = registry.manifest(repository, digest)
    if manifest is None:
        raise gone(image, digest, registry.host)
    if manifest.is_index:
        return _index_platforms(manifest)
    config_digest = _config_digest(manifest)
    if config_digest is None:
        raise RegistryError(
            f"image {unpinned(image)}@{digest} in {registry.host}: the manifest names no config blob "
            f"(media type {manifest.media_type or 'unknown'}), so its platform cannot be read",
            host=registry.host,
        )
    platform = Platform.from_json(registry.blob_json(repository, config_digest))
    return [platform] if platform is not None else []


def check_platforms(
    client: Callable[[], RegistryClient],
    image: str,
    repository: str,
    digest: str,
    wanted: tuple[Platform, ...],
    *,
    quick: QuickChecker | None = None,
) -> tuple[Platform, ...]:
    """Raise unless every ``wanted`` platform is served by ``digest``; returns the platforms found."""
    if not wanted:
        return ()
    found = platforms_of(client, image, repository, digest, quick)
    missing = [w for w in wanted if not any(w.satisfied_by(f) for f in found)]
    if missing:
        _platform_cache.keep(digest, list(found))  # no tag entry will carry them: the next run reads no config
        listed = ", ".join(map(str, found)) or "none that it names"
        raise RegistryError(
            f"image {unpinned(image)}@{digest} has no {', '.join(map(str, missing))} image "
            f"(its platforms: {listed}); tasks would fail on those nodes with 'exec format error' or "
            "'no matching manifest'. Build for them (ImageSpec(platform=...)), or say where the tasks run with "
            f"PrivateRegistry(platforms=[...]) or ImageSpec(builder_options={{'{OPTION_PLATFORMS}': [...]}}).",
            host=registry_host(image),
        )
    return found


def registry_host(image: str) -> str:
    from .._reference import ImageReference

    return ImageReference.parse(unpinned(image)).host
