"""The ImageSpec builder that wraps whichever builder the user would otherwise get.

Selected by priority, not by ``builder=``: flytekit fills ``ImageSpec.builder`` with the
highest-priority builder at construction, so a plain ``ImageSpec(registry=...)`` reaches us
with no code change. For any registry that is not declared private we step aside completely:
``should_build`` and ``build_image`` go straight to the inner builder, unchanged. For a private
one we check existence with authenticated API calls (never "assume it exists"), verify the
login before any build starts, build with a temporary docker config that routes the private
hosts to our credential helper, and verify the tag is in the registry afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import click
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec, ImageSpecBuilder

from .._errors import PushVerificationError

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry
    from ..credentials import Credential, Resolution
    from ..distribution._quick import QuickChecker
    from ._lookahead import Lookahead

BUILDER_NAME = "private-registry"
#: Above every builder flytekit and its plugins register (default 1, envd 5, union 10).
PRIORITY = 100
ENV_INNER_BUILDER = "FLYTE_PRIVATE_REGISTRY_BUILDER"
_REFRESH_MARGIN = timedelta(minutes=5)


def _echo(message: str, color: str = "blue") -> None:
    click.secho(message, fg=color)


@dataclass
class _Session:
    """One registry's resolved credential and logged-in client, reused across the specs of a run."""

    registry: PrivateRegistry
    resolution: Resolution
    checked: set[str] = field(default_factory=set)
    prepared: set[str] = field(default_factory=set)
    prefetched: set[tuple[str, ...]] = field(default_factory=set)
    ahead: Lookahead | None = None  # the other loaded images, checked alongside (``_lookahead``)
    _client: Any = None
    _quick: QuickChecker | None = None

    @property
    def client(self) -> Any:
        """The full registry client, made on first use (importing httpx costs more than a whole stdlib check)."""
        if self._client is None:
            self.leave_quick()
        return self._client

    def leave_quick(self) -> None:
        """This registry's checks go to the full client from now on (it retries, and explains a refusal)."""
        if self._client is None:
            self._client = self.registry.client(actions=("pull", "push"), resolution=self.resolution)
        if self._quick is not None:
            self._quick.close()

    @property
    def quick(self) -> QuickChecker | None:
        """The stdlib path (``distribution/_quick.py``) until the full client is made: then httpx is paid for."""
        if self._client is not None:
            return None
        if self._quick is None:
            from ..distribution._quick import QuickChecker

            registry = self.registry
            self._quick = QuickChecker(
                registry.host, self.credential, insecure=registry.insecure, ca_file=registry.ca_file
            )
        return self._quick

    @property
    def credential(self) -> Credential | None:
        return self.resolution.credential

    def who(self) -> str:
        cred = self.credential
        return f"as {cred.username!r} ({cred.source})" if cred else "anonymously"


def _split(image: str) -> tuple[str, str, str]:
    from .._reference import ImageReference

    ref = ImageReference.parse(image)
    return ref.host, ref.repository, ref.reference


class PrivateRegistryBuilder(ImageSpecBuilder):
    builder_type = BUILDER_NAME

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    # -- selection ---------------------------------------------------------------------------
    @staticmethod
    def target(spec: ImageSpec) -> PrivateRegistry | None:
        from .._catalog import CATALOG

        return CATALOG.for_spec(spec.registry, spec.name)

    @staticmethod
    def inner(target: PrivateRegistry | None) -> ImageSpecBuilder:
        """The wrapped builder: the registry's ``builder``, the env override, or the best other one."""
        from .._errors import ConfigurationError

        registered = ImageBuildEngine.get_registry()
        name = (target.builder or os.environ.get(ENV_INNER_BUILDER)) if target is not None else None
        if name is None:
            others = {k: v for k, v in registered.items() if k != BUILDER_NAME}
            if not others:
                raise ConfigurationError("no ImageSpec builder is registered besides private-registry")
            name = max(others, key=lambda k: others[k][1])
        elif name == BUILDER_NAME or name not in registered:
            known = ", ".join(sorted(k for k in registered if k != BUILDER_NAME))
            raise ConfigurationError(
                f"inner builder {name!r} (from PrivateRegistry.builder or {ENV_INNER_BUILDER}) is not "
                f"registered; registered builders: {known}"
            )
        return registered[name][0]

    # -- sessions ----------------------------------------------------------------------------
    def session(self, registry: PrivateRegistry) -> _Session:
        """Resolve and keep the registry's credential; re-resolve when it is about to expire."""
        with self._lock:
            cached = self._sessions.get(registry.prefix)
            fresh = cached is not None and cached.registry is registry  # a redeclared prefix starts over
            if fresh and not (cached.credential and cached.credential.expires_within(_REFRESH_MARGIN)):
                return cached
            resolution = registry.resolve()
            session = _Session(registry, resolution)
            self._sessions[registry.prefix] = session
            return session

    @staticmethod
    @contextmanager
    def _explained(session: _Session) -> Iterator[None]:
        """A refusal of anonymous access is reported as "no credentials", listing every source tried."""
        from .._errors import AuthenticationError

        try:
            yield
        except AuthenticationError:
            if session.credential is None:
                session.resolution.require()  # raises, listing every source that was tried
            raise

    @staticmethod
    def _prefetch(session: _Session, spec: ImageSpec, actions: tuple[str, ...] = ("pull",)) -> None:
        """One token request for ``actions`` on every repository of this registry flytekit has loaded (``_visible``).

        Pull for the checks; pull and push once the first image turns out to be missing, so
        ten missing images cost one push-token request, not ten. Pure checks never ask for push.
        """
        if actions in session.prefetched:
            return
        session.prefetched.add(actions)
        from .._errors import FlytePrivateRegistryError
        from ._visible import visible_repositories

        with suppress(FlytePrivateRegistryError):  # each repository then asks alone and reports its own error
            session.client.prefetch_tokens(visible_repositories(session.registry, spec), actions)

    def _digest(
        self, session: _Session, repository: str, reference: str, spec: ImageSpec | None = None, *, read: bool = False
    ) -> str | None:
        """The existence check: the stdlib path first, the full client for any answer it does not judge.

        With ``spec``, a token request covers every repository of the registry flytekit has loaded.
        With ``read``, the stdlib path GETs the manifest instead of HEADing it and hands the body to
        the platform check: a tag checked for the first time costs two requests, not three.
        """
        from ._visible import visible_repositories

        quick = session.quick
        if quick is not None:
            from ._pinning import check_tag

            batch = partial(visible_repositories, session.registry, spec) if spec is not None else None
            # the batch is listed only if a token is fetched
            digest = check_tag(quick, repository, reference, read=read, batch=batch)
            if digest is None or isinstance(digest, str):
                return digest
        if spec is not None:
            self._prefetch(session, spec)
        with self._explained(session):
            return session.client.manifest_digest(repository, reference)

    @staticmethod
    def _look_ahead(session: _Session, spec: ImageSpec, repository: str, tag: str) -> None:
        """At a registry's first check: log in for every loaded repository, then check the other images alongside."""
        quick = session.quick
        if session.ahead is not None or quick is None:
            return
        from ._lookahead import Lookahead, predicted_jobs
        from ._visible import visible_repositories

        jobs = predicted_jobs(session.registry, (repository, tag))
        session.ahead = Lookahead()  # nothing to look at, or a failed login: the usual checks
        if not jobs:
            return
        if not quick.reach():
            session.leave_quick()  # a login the stdlib path cannot judge is not tried twice
            return
        ahead = Lookahead(quick, jobs)  # the helpers connect while the token is fetched
        if quick.ready(repository, batch=partial(visible_repositories, session.registry, spec)):
            ahead.start()
            session.ahead = ahead
        else:
            ahead.cancel()
            session.leave_quick()

    def login(self, session: _Session, repository: str, spec: ImageSpec | None = None) -> None:
        """Fail fast: prove the credential can push to ``repository`` before anything is built.

        With ``spec``, the push token is asked for every repository flytekit has loaded at once.
        """
        if repository in session.checked:
            return
        if spec is not None:
            self._prefetch(session, spec, ("pull", "push"))
        with self._explained(session):
            session.client.login(repository)
        session.checked.add(repository)

    def _base_image_registry(self, spec: ImageSpec) -> tuple[PrivateRegistry, str, str] | None:
        from .._catalog import CATALOG

        if not isinstance(spec.base_image, str):
            return None
        registry = CATALOG.for_image(spec.base_image)
        if registry is None:
            return None
        _, repository, reference = _split(spec.base_image)
        return registry, repository, reference

    def _check_base_image(self, spec: ImageSpec) -> PrivateRegistry | None:
        """A base image under a declared registry must exist there before a build starts."""
        from .._errors import RegistryError
        from ._pinning import gone

        base = self._base_image_registry(spec)
        if base is None:
            return None
        registry, repository, reference = base
        session = self.session(registry)
        digest = self._digest(session, repository, reference)
        if digest is None and "@" in spec.base_image:  # a pinned base (an ImageSpec base is pinned too)
            raise gone(spec.base_image, reference, registry.registry)
        if digest is None:
            raise RegistryError(
                f"base image {spec.base_image} is not in private registry {registry.registry} "
                f"(checked {session.who()}); push it first or fix base_image",
                host=registry.host,
                status=404,
            )
        return registry

    # -- ImageSpecBuilder --------------------------------------------------------------------
    def should_build(self, image_spec: ImageSpec) -> bool:
        from ..distribution._quick import UNKNOWN
        from ._pinning import forget, plain_name, wanted_platforms
        from ._platform_cache import known_digest

        target = self.target(image_spec)
        if target is None:
            self._check_base_image(image_spec)
            return self.inner(None).should_build(image_spec)
        inner = self.inner(target)  # a wrong builder name is a configuration error: raise it now
        validate = getattr(inner, "validate", None)
        if callable(validate):  # an inner builder that can reject a spec does so before any registry work
            validate(image_spec)
        image = plain_name(image_spec)  # image_name() answers an earlier pin; the check is by tag
        _, repository, tag = _split(image)
        session = self.session(target)
        self._check_base_image(image_spec)
        force = getattr(image_spec, "_is_force_push", False)
        # a tag seen before is HEADed (its platforms are cached by digest); a new one is read once for both
        platforms = not force and bool(wanted_platforms(target, image_spec))
        known = known_digest(target.host, repository, tag) if platforms else None
        digest = None
        if not force:
            self._look_ahead(session, image_spec, repository, tag)
            answer = session.ahead.take(repository, tag) if session.ahead is not None else None
            if answer is UNKNOWN:  # an answer the stdlib path did not judge: the full client's turn
                session.leave_quick()
            digest = answer if isinstance(answer, str) else None
        if digest is None:
            digest = self._digest(session, repository, tag, image_spec, read=platforms and known is None)
        if digest is not None and not force:
            _echo(f"Image {image} found in private registry {target.registry} ({digest[:19]}). Skip building.")
            self._pin(session, image_spec, digest, known=known)  # flytekit records nothing when we skip the build
            return False
        forget(image_spec)  # an earlier pin of this name must not become the new build's --tag
        self.login(session, repository, image_spec)  # push rights are needed only now, proven before any build
        if digest is None:
            _echo(
                f"Image {image} not found in private registry {target.registry} (checked {session.who()}). building..."
            )
        else:
            _echo(f"Overwriting existing image {image} in {target.registry} (force push).")
        return True

    @staticmethod
    def _build_credentials(*sessions: _Session | None) -> dict[str, Credential]:
        """Host -> credential for every private registry the build touches (docker keys by host)."""
        return {
            session.registry.reference.canonical_host: session.credential
            for session in sessions
            if session is not None and session.credential is not None
        }

    def build_image(self, image_spec: ImageSpec) -> str | None:
        from ._build_env import patched_environ, private_docker_config, terminate_as_exit
        from ._pinning import forget
        from ._requirements import require_ready

        target = self.target(image_spec)
        inner = self.inner(target)
        base = self._base_image_registry(image_spec)
        if target is None and base is None:
            return inner.build_image(image_spec)
        # only now is a build certain (should_build found no image): buildx, envd, a daemon, checked first
        require_ready(inner, image_spec)
        if target is not None:
            forget(image_spec)
        image = image_spec.image_name()
        session = None
        if target is not None:
            _, repository, _ = _split(image)
            session = self.session(target)
            self.login(session, repository, image_spec)
            if repository not in session.prepared:
                target.provider.prepare_push(target, repository, session.credential)
                session.prepared.add(repository)
        credentials = self._build_credentials(self.session(base[0]) if base else None, session)

        # SIGTERM handling first, so a signal during set-up still removes the directory
        with terminate_as_exit(), private_docker_config(credentials) as env, patched_environ(env.env):
            result = inner.build_image(image_spec)

        if session is not None:
            digest = self.verify_pushed(session, result or image)
            if digest is not None:
                return self._pin(session, image_spec, digest, built=result or image)
        return result

    def _pin(
        self,
        session: _Session,
        image_spec: ImageSpec,
        digest: str,
        *,
        built: str | None = None,
        known: str | None = None,
    ) -> str:
        """Check the platforms of what was found or pushed, then pin the tasks to its digest (docs/digests.md).

        ``digest`` is what the existence check or the post-push verification already answered, so
        pinning costs no request; the platform check costs one or two GETs per digest, cached.
        Once it passes, the tag is remembered with its digest (unless ``known`` says so already):
        its next check is a HEAD.
        """
        from ._pinning import (
            check_platforms,
            forget,
            pin_wanted,
            pinned_reference,
            plain_name,
            record,
            unpinned,
            wanted_platforms,
        )
        from ._platform_cache import remember_digest

        image = unpinned(built) if built else plain_name(image_spec)
        _, repository, tag = _split(image)
        if not digest:  # the registry sent no Docker-Content-Digest: the manifest's own hash is its digest
            with self._explained(session):
                found = session.client.manifest(repository, tag)
            if found is None:
                raise PushVerificationError(f"{image} vanished from {session.registry.registry} while being checked")
            digest = found.digest
        wanted = wanted_platforms(session.registry, image_spec)
        with self._explained(session):
            check_platforms(lambda: session.client, image, repository, digest, wanted, quick=session.quick)
        if wanted and digest != known:
            remember_digest(session.registry.host, repository, tag, digest)
        if not pin_wanted(session.registry, image_spec):
            forget(image_spec)
            return image
        reference = pinned_reference(image, digest)
        record(image_spec, reference)
        _echo(f"Tasks on {image} are pinned to {digest} (checked for {', '.join(map(str, wanted)) or 'any platform'}).")
        return reference

    def verify_pushed(self, session: _Session, image: str) -> str | None:
        """The pushed manifest's digest (what the tasks get pinned to); ``None`` when pushing is off."""
        if os.environ.get("FLYTE_PUSH_IMAGE_SPEC", "true").lower() not in ("true", "1"):
            _echo(f"FLYTE_PUSH_IMAGE_SPEC is off: {image} was built but not pushed.", "yellow")
            return None
        _, repository, tag = _split(image)
        digest = session.client.manifest_digest(repository, tag)
        if digest is None:
            raise PushVerificationError(
                f"the build finished but {image} is not in registry {session.registry.registry} "
                f"(checked {session.who()}): the builder did not push it. Refusing to register a task "
                "whose image cannot be pulled; check the builder's output above."
            )
        _echo(f"Verified {image} in {session.registry.registry} ({digest[:19]}).")
        return digest
