"""The source files a stage job executes: its modules and every ``stages`` module they import.

The workflow lists these files as inputs of each rule, so editing a module reruns exactly the
jobs whose code imports it, directly or through other modules. Imports are read from the source
with :mod:`ast` (nothing is imported). Package ``__init__.py`` files are followed (their
imports count) but not listed themselves: they are registries that route names to modules, so
adding a method to a registry does not rerun every job.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "stages"
ROOT = Path(__file__).resolve().parents[2]


def module_path(module: str, root: Path = ROOT) -> Path | None:
    """File of dotted ``module`` under ``root`` (a module file or a package's __init__.py)."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def _direct_imports(module: str, root: Path) -> tuple[str, ...]:
    path = module_path(module, root)
    if path is None:
        return ()
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return tuple(name for name in found
                 if name.split(".")[0] == PACKAGE and module_path(name, root) is not None)


def _is_package(module: str, root: Path) -> bool:
    path = module_path(module, root)
    return path is not None and path.name == "__init__.py"


def module_closure(modules: Iterable[str], root: Path = ROOT) -> list[str]:
    """``modules`` and the ``stages`` modules they import, transitively, sorted; package
    ``__init__`` modules are followed but left out of the result unless named in ``modules``."""
    seen: set[str] = set()
    modules = list(modules)
    todo = list(modules)
    for name in todo:
        if module_path(name, root) is None:
            raise ValueError(f"no module '{name}' under {root}")
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += _direct_imports(name, root)
    named = set(modules)
    return sorted(m for m in seen if m in named or not _is_package(m, root))


def module_files(modules: Iterable[str], root: Path = ROOT) -> list[str]:
    """Paths (str) of :func:`module_closure`."""
    return [str(module_path(m, root)) for m in module_closure(modules, root)]
