"""``pyflyte`` in this process, timing what the ImageSpec builders' ``should_build``/``build_image`` take.

Why: on a shared 2-core machine one ``pyflyte package`` run's wall and CPU time move by about
±10 % from run to run (the same 20 tasks took 1.4 to 2.1 s), so end-to-end ratios need many
rounds to resolve a 5 % bar. The builders are where a declared registry's run differs from
flytekit alone (the existence checks, the token, the pinning, every import they need), and
timing them inside the same process is not disturbed by how fast the rest of that run was.

Where two variants differ in more than the builders (how the tasks are written: a pod template,
``@reg.task``), the same holds for ``pyflyte package``'s own work: loading the workflow module,
serializing its tasks (the builders included) and writing the archive. That window is timed too:
what it leaves out (starting Python, ``import flytekit`` with every installed plugin, parsing the
command line) is the same code in every variant, and is most of a run's time and of its noise.

Used as ``python _in_builders.py <pyflyte arguments>``: the same as the ``pyflyte`` script
(``flytekit.clis.sdk_in_container.pyflyte:main``) plus two clocks around every builder call
(outermost calls only) and one around ``serialize_and_package``, written as JSON to
``$FPR_BENCH_IN_BUILDERS``. Both wall clocks also count what the plugin's import spent starting
the registries' warm-up (``push/_warm_up.py``; on the importing thread: reading the config and
the imports the first check would make).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

_spent = {"wall": 0.0, "cpu": 0.0, "calls": 0, "window": 0.0}
_depth = [0]


def _timed(method: Callable[..., Any]) -> Callable[..., Any]:
    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        _depth[0] += 1
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return method(self, *args, **kwargs)
        finally:
            _depth[0] -= 1
            if _depth[0] == 0:  # a wrapping builder calling its inner one counts once
                _spent["wall"] += time.perf_counter() - wall
                _spent["cpu"] += time.process_time() - cpu
                _spent["calls"] += 1

    return timed


def _windowed(function: Callable[..., Any]) -> Callable[..., Any]:
    def windowed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _spent["window"] += time.perf_counter() - began

    return windowed


def main() -> int:
    sys.argv = ["pyflyte", *sys.argv[1:]]  # before ``import flytekit``, as the pyflyte script has it
    from flytekit.clis.sdk_in_container import package
    from flytekit.clis.sdk_in_container.pyflyte import main as pyflyte
    from flytekit.image_spec.image_spec import ImageBuildEngine

    package.serialize_and_package = _windowed(package.serialize_and_package)  # the name the command calls

    classes = {type(builder) for builder, _ in ImageBuildEngine._REGISTRY.values()}
    for cls in classes:
        for name in ("should_build", "build_image"):
            if name in vars(cls):
                setattr(cls, name, _timed(vars(cls)[name]))
    try:
        code = pyflyte()
    except SystemExit as exit_:
        code = exit_.code
    try:  # the plugin's import started the warm-up (its thread's work overlaps the rest of the import)
        from flyte_private_registry.push import _warm_up

        _spent["wall"] += _warm_up.spent
        _spent["window"] += _warm_up.spent
    except ImportError:
        pass
    with open(os.environ["FPR_BENCH_IN_BUILDERS"], "w") as out:
        json.dump(_spent, out)
    return code if isinstance(code, int) else 0 if code is None else 1


if __name__ == "__main__":
    sys.exit(main())
