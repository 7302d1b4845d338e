"""Checks of the other images flytekit has loaded, made alongside while it serializes.

Why: flytekit asks the builder about one ImageSpec at a time, just before it serializes the
tasks on it, so a run over ten images made ten checks one after another: ten ``HEAD``s, or on a
first run ten manifest and ten config ``GET``s, a round trip each. By the first ask every task,
and so every spec, is loaded. Their tags are not fixed yet, but flytekit's own code works them
out: ``update_image_spec_copy_handling`` with the run's serialization settings, then
``ImageSpec.tag``, both on a copy, so no field and no cached tag of the user's spec is set early.
Those tags are checked on a few connections of their own (:meth:`QuickChecker.sibling`: the
token the first check fetched, never a token request of their own), and when flytekit asks
about one of them the builder takes the answer instead of asking the registry again.

A guess stays a guess. An answer is taken only for the exact repository and tag flytekit asks
about, only when it found the image, and only within :data:`FRESH_SECONDS`; the platform check
and the pin still run on the caller's thread (from the cache the check filled). Anything else
is checked as before, so a wrong guess costs requests made alongside, never a wrong answer. A
missing image, or an answer the stdlib path does not judge, stops the checks not yet started;
the latter is handed over as ``UNKNOWN``, and the builder goes to the full client as it would
after its own check.
Specs whose tag hashes files (a copy mode, ``copy``) or another spec (an ImageSpec
``base_image``) are left to the usual check: working their tags out costs what it would save.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._declaration import PrivateRegistry
    from ..distribution._quick import QuickChecker

#: An answer older than this is not taken: the image is checked again (a ``HEAD``).
FRESH_SECONDS = 60.0
#: Connections used alongside, each a TLS handshake. Measured on 2 cores against a local registry,
#: three beat one and two for first runs (a GET and a config read per image) and for later ones
#: (a HEAD each).
WORKERS = 3
#: Across a network each check waits a round trip or two, and a handshake's CPU is small beside
#: that: when a helper's TCP connect takes :data:`FAR_SECONDS` or more, up to this many check at once.
FAR_WORKERS = 8
FAR_SECONDS = 0.01
#: Specs looked at in one run (a run with more checks the rest as before).
MAX_SPECS = 100

_QUEUED, _RUNNING, _DONE, _TAKEN = range(4)


class _Job:
    __slots__ = ("answer", "at", "done", "known", "read", "repository", "state", "tag")

    def __init__(self, repository: str, tag: str, read: bool, known: str | None) -> None:
        # read: the platforms are wanted; known: the digest the tag had when last checked here
        self.repository, self.tag, self.read, self.known = repository, tag, read, known
        self.state = _QUEUED
        self.answer: object = None  # a digest, UNKNOWN, or None (missing, not started, or our own bug)
        self.at = 0.0
        self.done = threading.Event()


class Lookahead:
    """The checks of one registry's other images in a run; :meth:`take` hands each answer over once.

    ``quick`` must know the registry's endpoint (:meth:`QuickChecker.reach`). The helpers connect
    at once, while the caller logs in for their repositories (:meth:`QuickChecker.ready`), and
    check only after :meth:`start`: they use that token and never fetch one. After
    :meth:`cancel` (the login failed) they leave without a request.
    """

    def __init__(self, quick: QuickChecker | None = None, jobs: list[_Job] | None = None) -> None:
        jobs = jobs or []
        self._pid = os.getpid()  # helper threads do not survive a fork
        self._jobs = {(job.repository, job.tag): job for job in jobs}
        self._queue = deque(jobs)
        self._lock = threading.Lock()
        self._quick = quick
        self._workers = min(WORKERS, len(jobs)) if quick is not None else 0
        self._grown = False
        self._go = threading.Event()  # set once ``quick`` holds the token the checks use
        for _ in range(self._workers):
            self._spawn()

    def start(self) -> None:
        """The login is done: the helpers, connected meanwhile, start checking."""
        self._go.set()

    def cancel(self) -> None:
        """The login failed: the helpers leave without a request."""
        self._stop()
        self._go.set()

    def take(self, repository: str, tag: str) -> object:
        """The digest found alongside for this exact tag, ``UNKNOWN``, or ``None``: check it as usual.

        ``UNKNOWN`` is an answer the stdlib path did not judge: the full client's turn, as after
        the caller's own check.
        """
        from ..distribution._quick import BUDGET_SECONDS

        with self._lock:
            job = self._jobs.pop((repository, tag), None)
            if job is None or os.getpid() != self._pid:
                return None
            if job.state == _QUEUED:
                job.state = _TAKEN  # not started: the caller checks it, no one waits
                return None
        # a running check ends within its calls' budgets (a GET, a config read, a manifest read)
        if not job.done.wait(3 * BUDGET_SECONDS + 1):
            return None
        if isinstance(job.answer, str) and time.monotonic() - job.at > FRESH_SECONDS:
            return None
        return job.answer

    def _spawn(self) -> None:
        assert self._quick is not None
        worker = threading.Thread(
            target=self._work, args=(self._quick.sibling(),), name="flyte-private-registry-check", daemon=True
        )
        worker.start()

    def _grow(self) -> None:
        """A registry across a network: more checks at once (once per run)."""
        with self._lock:
            if self._grown:
                return
            self._grown = True
            extra = min(FAR_WORKERS, len(self._queue)) - self._workers
            self._workers += max(extra, 0)
        for _ in range(extra):
            self._spawn()

    def _work(self, quick: QuickChecker) -> None:
        from ..distribution._quick import BUDGET_SECONDS

        try:
            seconds = quick.open()  # while the caller logs in
            if seconds is not None and seconds >= FAR_SECONDS:
                self._grow()
            if not self._go.wait(2 * BUDGET_SECONDS):  # the login's calls end within their budgets
                self._stop()
                return
            while True:
                with self._lock:
                    if not self._queue:
                        return
                    job = self._queue.popleft()
                    if job.state != _QUEUED:
                        continue
                    job.state = _RUNNING
                try:
                    job.answer = _check(quick, job)
                except Exception:  # never a traceback from a helper thread: the caller checks it again
                    job.answer = None
                finally:
                    job.at, job.state = time.monotonic(), _DONE
                    job.done.set()
                if not isinstance(job.answer, str):
                    self._stop()
        finally:
            quick.close()

    def _stop(self) -> None:
        """A missing image, or an answer this path does not judge: leave the rest to the usual checks."""
        with self._lock:
            for job in self._queue:
                if job.state == _QUEUED:
                    job.state = _DONE  # no answer: whoever asks checks it, without waiting
                    job.done.set()
            self._queue.clear()


def _check(quick: QuickChecker, job: _Job) -> object:
    """What the builder's existence check does on the stdlib path, plus the platform read it would make."""
    from ._pinning import check_tag, read_platforms

    digest = check_tag(quick, job.repository, job.tag, read=job.read and job.known is None)
    if not isinstance(digest, str):
        return digest  # None for a 404: the caller checks again, just before it builds
    if job.read:
        read_platforms(quick, job.repository, digest)  # a moved tag's new manifest; cached otherwise
    return digest


def predicted_jobs(registry: PrivateRegistry, asked: tuple[str, str]) -> list[_Job]:
    """A check for each tag the other loaded specs under ``registry`` will have, as flytekit will work it out.

    ``asked`` is the repository and tag flytekit is asking about now (on a copy of its spec):
    the caller checks that one itself.
    """
    from ._platform_cache import known_digest

    jobs: dict[tuple[str, str], _Job] = {}
    for repository, tag, read in _predicted(registry):
        if (repository, tag) != asked and (repository, tag) not in jobs:
            known = known_digest(registry.host, repository, tag) if read else None
            jobs[repository, tag] = _Job(repository, tag, read, known)
    return list(jobs.values())


def _predicted(registry: PrivateRegistry) -> list[tuple[str, str, bool]]:
    """``(repository, tag, read platforms)`` of each loaded spec flytekit has not asked about yet."""
    from flytekit.constants import CopyFileDetection
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.python_auto_container import update_image_spec_copy_handling
    from flytekit.image_spec.image_spec import ImageSpec

    from .._reference import ImageReference
    from ._pinning import plain_name, wanted_platforms
    from ._visible import visible_specs

    settings = FlyteContextManager.current_context().serialization_settings
    if settings is None:  # not serializing: nothing says how flytekit will set the copy handling
        return []
    found = []
    for spec in visible_specs(registry, MAX_SPECS):
        if "tag" in vars(spec):  # asked about already: flytekit then caches the tag it registered
            continue
        if spec.copy or isinstance(spec.base_image, ImageSpec) or getattr(spec, "_is_force_push", False):
            continue
        try:
            guess = copy.copy(spec)
            update_image_spec_copy_handling(guess, settings)
            if guess.source_copy_mode not in (None, CopyFileDetection.NO_COPY):
                continue
            reference = ImageReference.parse(plain_name(guess))
            found.append((reference.repository, reference.reference, bool(wanted_platforms(registry, guess))))
        except Exception:  # a spec flytekit will reject, or explain, when it gets there
            continue
    return found
