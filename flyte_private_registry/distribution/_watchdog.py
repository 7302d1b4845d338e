"""One daemon thread that runs a callback when a call outlives its deadline.

Why not a ``threading.Timer`` per call: starting and joining a thread costs ~1.2 ms of wall
time (0.35 ms CPU) on a 2-core machine, as much as a third of a warm HEAD to a local registry,
and the quick path (:mod:`._quick`) arms a deadline for every check. Here arming and disarming
are a lock and a dict entry; the thread wakes only when the earliest deadline is due or an
earlier one is armed, and sleeps without a timeout while nothing is armed.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress


class Watchdog:
    """Deadlines for calls in flight; ``on_expire`` runs on the watchdog's thread, at most once per call."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # also the fork handler: the child has no watchdog thread, and the lock may be held by it
        self._cond = threading.Condition(threading.Lock())
        self._calls: dict[int, tuple[float, Callable[[], None]]] = {}
        self._last = 0
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, on_expire: Callable[[], None]) -> int:
        """Run ``on_expire`` at ``deadline`` (``time.monotonic()``) unless :meth:`disarm` comes first."""
        with self._cond:
            self._last += 1
            self._calls[self._last] = (deadline, on_expire)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flyte-private-registry-deadlines", daemon=True)
                self._thread.start()
            elif deadline < self._wake_at:
                self._cond.notify()
            return self._last

    def disarm(self, key: int) -> bool:
        """Forget the call; ``True`` when its deadline had already passed (``on_expire`` has run)."""
        with self._cond:
            return self._calls.pop(key, None) is None

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for key, (deadline, on_expire) in list(self._calls.items()):
                    if deadline <= now:
                        del self._calls[key]
                        with suppress(Exception):  # a failing callback must not stop the others'
                            on_expire()
                self._wake_at = min((deadline for deadline, _ in self._calls.values()), default=math.inf)
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)


WATCHDOG = Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=WATCHDOG._reset)
