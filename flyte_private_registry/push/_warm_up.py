"""While ``pyflyte`` starts, reach the configured registries, so the first existence check starts warm.

Why: ``import flytekit`` and the CLI take most of a second before a serializing command asks the
first builder, and a check's first round trips (``GET /v2/``, then TCP and TLS to the registry and
to its token realm) need nothing from the workflow: only the registry, which a config file or
``$FLYTE_PRIVATE_REGISTRIES`` already names. Across a network those are three to five round trips
of every run; here they overlap the import (``QuickChecker.warm_up``, on a daemon thread).

Only in a ``pyflyte`` command that builds images (``package``, ``register``, ``serialize``,
``build``, ``run --remote``): the plugin loads on every ``import flytekit``, including task
containers and notebooks, which must not reach for a registry. No credential is resolved or sent,
nothing is built or asked of the registry but ``GET /v2/``, and nothing is printed: whatever goes
wrong here is left for the checks, which start from nothing as before and explain it.
``FLYTE_PRIVATE_REGISTRY_WARM_UP=0`` turns it off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..distribution._quick import QuickChecker

ENV_WARM_UP = "FLYTE_PRIVATE_REGISTRY_WARM_UP"
#: ``pyflyte`` subcommands that build (or check) ImageSpec images; ``run`` only with ``--remote``.
_BUILDING = frozenset({"package", "register", "serialize", "build"})
_REMOTE = frozenset({"--remote", "-r"})
#: Registries warmed in one run (each on its own thread).
MAX_REGISTRIES = 8
#: Seconds the plugin's import spent starting the warm-up (``benchmarks/_in_builders.py`` counts them).
spent = 0.0


def wanted(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether this process is a ``pyflyte`` command about to check images, and the user left this on."""
    if environ.get(ENV_WARM_UP, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not argv or os.path.basename(argv[0]).removesuffix(".py") != "pyflyte":
        return False
    words = set(argv[1:])
    return bool(words & _BUILDING) or ("run" in words and bool(words & _REMOTE))


def start(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> list[threading.Thread]:
    """Warm every configured registry on a thread of its own; never raises, never prints."""
    global spent
    began = time.perf_counter()
    try:
        if not wanted(sys.argv if argv is None else argv, os.environ if environ is None else environ):
            return []
        # Imported here, on the importing thread: a thread importing while ``import flytekit``
        # holds its import locks could meet it in a cycle. The first check imports them anyway.
        from .._config import load_configured
        from ..distribution import _auth  # noqa: F401  (the realm's rules, used on the thread)
        from ..distribution._quick import QuickChecker, warm_key
        from ._lookahead import WORKERS

        seen: dict[tuple[str, bool, str | None], QuickChecker] = {}
        for registry in load_configured():
            key = warm_key(registry.host, registry.insecure, registry.ca_file)
            if key not in seen and len(seen) < MAX_REGISTRIES:
                seen[key] = QuickChecker(registry.host, None, insecure=registry.insecure, ca_file=registry.ca_file)
        name = "flyte-private-registry-warm-up"
        threads = [
            threading.Thread(target=_warm, args=(checker, 1 + WORKERS), name=name, daemon=True)
            for checker in seen.values()
        ]
        for thread in threads:
            thread.start()
        return threads
    except Exception:  # a config the builder will explain, a registry this path cannot judge: check as before
        return []
    finally:
        spent += time.perf_counter() - began


def _warm(checker: QuickChecker, count: int) -> None:
    try:
        checker.warm_up(count)
    except Exception:  # never a traceback from this thread: the checks start from nothing instead
        return
