"""When to try a registry call again, and when to stop: one small policy object and a deadline.

Registries behind load balancers answer 429/502/503/504 and reset connections during deploys;
one such answer must not fail a whole ``pyflyte register``. Retrying forever is as bad, so every
operation also carries a wall-clock deadline that a slow or dripping server cannot stretch.
No httpx here: the policy is plain data, cheap to import and easy to shorten in tests.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass, field

#: Answers worth another try: rate limiting and the gateway/unavailable family. 500 is a server bug: no retry.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter.

    ``attempts`` counts the first try; ``deadline`` (seconds) bounds one whole operation
    (ping, login, one manifest check) including token fetches, redirects, body reads and sleeps.
    A ``Retry-After`` is honoured up to ``max_delay``.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    deadline: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0 or self.deadline <= 0:
            raise ValueError(f"invalid {self!r}: attempts >= 1, delays >= 0 and deadline > 0")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt - 1, 30)))
        return random.uniform(ceiling / 2, ceiling)  # jitter, not cryptography

    def start(self) -> Deadline:
        return Deadline(time.monotonic() + self.deadline, self.deadline)


@dataclass(frozen=True)
class Deadline:
    """The instant (``time.monotonic``) an operation must be over by."""

    at: float
    seconds: float = field(default=0.0, compare=False)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone accepts '¹' and other Unicode digits
        return float(value[:9])
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None
