"""Fail on any import cycle inside the package, counting imports made inside functions.

Only two kinds of edge are left out: imports under ``if TYPE_CHECKING:`` (never executed), and the
declaration's documented hand-off to ``pull/`` (``PrivateRegistry.task`` & co. import the pull side
lazily). Run: ``python tools/import_graph.py`` (exit 1 and the cycle on failure).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "flyte_private_registry"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
# (importer, imported package prefix) pairs that are allowed to point back: the declaration's
# pull-side methods hand off to pull/ with a local import.
ALLOWED_BACK_EDGES = {(f"{PACKAGE}._declaration", f"{PACKAGE}.pull")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(current: str, is_package: bool, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    current = module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(current, is_package, child.module, child.level)
                for alias in child.names:
                    # "from . import x" names submodule x; "from .x import y" names a symbol of x.
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    edges = set()
    for name in found:
        # "import a.b.c" where c is a symbol: keep the longest known module it starts with.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != current and name.startswith(PACKAGE):
            edges.add(name)
    return edges


def graph() -> dict[str, set[str]]:
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(p) for p in files}
    result: dict[str, set[str]] = {}
    for path in files:
        current = module_name(path)
        edges = imports_of(path, modules)
        result[current] = {e for e in edges if not any(current == a and e.startswith(b) for a, b in ALLOWED_BACK_EDGES)}
    return result


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            strongconnect(node)
    return components


def main() -> int:
    edges = graph()
    cycles = find_cycles(edges)
    if not cycles:
        print(f"import graph: {len(edges)} modules, no cycle")
        return 0
    for component in cycles:
        print(f"import cycle among {len(component)} modules:")
        for module in component:
            inside = sorted(e for e in edges[module] if e in component)
            print(f"  {module} -> {', '.join(inside)}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
