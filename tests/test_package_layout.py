"""The package's layout: every module imports on its own, no import cycles, the library never
imports a stage's entry point, and the top of ``stages/`` holds only entry points.

The entry points are the modules the workflow runs (``python -m stages.<name>`` in the Snakefile
and ``workflow/rules/``) and the user commands of :data:`USER_COMMANDS`; everything else lives in
a subpackage by concern (``data/``, ``nets/``, ``methods/``, ``runtime/``, ``reporting/``,
``plumbing/``).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from stages.plumbing.codedeps import module_path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "stages"
#: commands a user runs by hand (not a rule): ``python -m stages.records append ...``
USER_COMMANDS = {"records"}
#: the issue's bound on the modules at the top of stages/ (entry points and the package face)
MAX_TOP_LEVEL = 16


def package_modules(root: Path, package: str = PACKAGE) -> list[str]:
    """Dotted names of every module under ``root/package`` (a package by its own name)."""
    names = []
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imported_modules(module: str, root: Path, package: str = PACKAGE) -> set[str]:
    """The ``package`` modules ``module`` imports anywhere in its source (module level or inside
    functions), each resolved to the most specific module: ``from a.b import c`` is ``a.b.c``
    when that is a module, else ``a.b``; relative imports are resolved against ``module``."""
    path = module_path(module, root)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name:
            if name.split(".")[0] == package and module_path(name, root) is not None:
                return name
            name = name.rpartition(".")[0]
        return None

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {m for m in map(resolve, names) if m is not None and m != module}
    return found


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports (:func:`imported_modules`)."""
    return {m: imported_modules(m, root, package) for m in package_modules(root, package)}


@cache
def stages_graph() -> dict[str, set[str]]:
    """:func:`import_graph` of this checkout's ``stages``."""
    return import_graph(REPO)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` through each strongly connected group of ``graph`` that has
    more than one module (Tarjan's algorithm, then a shortest way back to the group's first)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for group in groups:
        start, members = group[0], set(group)
        paths = {w: [start, w] for w in graph[start] & members}
        todo = list(paths)
        while start not in paths:  # breadth first through the group back to start
            v = todo.pop(0)
            for w in sorted(graph[v] & members):
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    todo.append(w)
        cycles.append(paths[start])
    return sorted(cycles)


#: imports every module named on the command line, each in a child forked from an interpreter
#: that has imported no module of the package (the third-party modules the package imports are
#: loaded once before forking, so each child only runs the package's own code)
_ISOLATED_IMPORTS = r"""
import importlib, os, sys, traceback
root, package, preload, modules = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
sys.path.insert(0, root)
for name in filter(None, preload.split(",")):
    try:
        importlib.import_module(name)
    except Exception:
        pass
assert not any(m == package or m.startswith(package + ".") for m in sys.modules)
sys.stdout.flush()
running = {}
def reap():
    pid, status = os.wait()
    if status:
        print(f"FAILED {running[pid]}", flush=True)
    del running[pid]
for module in modules:
    if len(running) >= 2:
        reap()
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(module)
        except BaseException:
            print(f"--- {module}\n{traceback.format_exc()}", flush=True)
            os._exit(1)
        os._exit(0)
    running[pid] = module
while running:
    reap()
"""


def third_party_imports(root: Path, package: str = PACKAGE) -> list[str]:
    """Top-level names of the modules outside ``package`` that its modules import at module
    level (preloaded before the isolated imports)."""
    names = set()
    for module in package_modules(root, package):
        tree = ast.parse(module_path(module, root).read_text())
        for node in tree.body:
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] != package and n != "__future__")


def isolated_import_failures(root: Path, package: str = PACKAGE) -> str:
    """The modules of ``package`` under ``root`` that fail to import on their own, with their
    tracebacks ('' when every one imports)."""
    done = subprocess.run(
        [sys.executable, "-c", _ISOLATED_IMPORTS, str(root), package,
         ",".join(third_party_imports(root, package)), *package_modules(root, package)],
        capture_output=True, text=True, cwd=root, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def entry_points(root: Path = REPO) -> set[str]:
    """The stage modules the workflow runs: ``python -m stages.<name>`` in its rules."""
    rules = [root / "Snakefile", *sorted((root / "workflow" / "rules").glob("*.smk"))]
    return {name for path in rules
            for name in re.findall(r"python -m stages\.(\w+)", path.read_text())}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# --- the checks on a small made-up package: each one can fail --------------------------------

def test_cycle_finder_names_the_cycle(tmp_path):
    root = _write(tmp_path, {
        "toy/__init__.py": "",
        "toy/a.py": "from toy.sub import b\n",
        "toy/sub/__init__.py": "",
        "toy/sub/b.py": "def f():\n    from toy.sub.c import g\n",  # inside a function
        "toy/sub/c.py": "from . import d\nimport toy.a\n",  # relative, and plain
        "toy/sub/d.py": "import os\nfrom toy import e\n",
        "toy/e.py": "X = 1\n",
    })
    graph = import_graph(root, "toy")
    assert graph["toy.sub.c"] == {"toy.sub.d", "toy.a"}
    assert graph["toy.sub.d"] == {"toy.e"}
    assert import_cycles(graph) == [["toy.a", "toy.sub.b", "toy.sub.c", "toy.a"]]
    (root / "toy/sub/c.py").write_text("from . import d\n")
    assert import_cycles(import_graph(root, "toy")) == []


def test_isolated_imports_catch_a_module_that_needs_another_imported_first(tmp_path):
    root = _write(tmp_path, {
        "toy/__init__.py": "",
        "toy/c.py": "Z = 1\n",
        "toy/b.py": "import toy\nY = toy.c.Z\n",  # works only after someone imported toy.c
        "toy/a.py": "import json\nimport toy.c\nimport toy.b\n",
    })
    failures = isolated_import_failures(root, "toy")
    assert "FAILED toy.b" in failures and "AttributeError" in failures
    assert "FAILED toy.a" not in failures and "FAILED toy.c" not in failures
    (root / "toy/b.py").write_text("import toy.c\nY = toy.c.Z\n")
    assert isolated_import_failures(root, "toy") == ""


# --- the checks on stages ---------------------------------------------------------------------

def test_every_module_imports_on_its_own():
    failures = isolated_import_failures(REPO)
    assert failures == "", f"modules that fail to import in a fresh interpreter:\n{failures}"


def test_no_import_cycles():
    cycles = import_cycles(stages_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_workflow_entry_points_are_found():
    found = entry_points()
    assert {"fetch", "prepare", "pretrain", "finetune", "evaluate", "paper_figures"} <= found
    for name in found | USER_COMMANDS:
        text = (REPO / PACKAGE / f"{name}.py").read_text()
        assert "def build_parser(" in text and "main_for(build_parser, run)" in text, name


def test_top_level_holds_only_entry_points():
    top = sorted(p.stem for p in (REPO / PACKAGE).glob("*.py"))
    allowed = entry_points() | USER_COMMANDS | {"__init__"}
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules at the top of stages/: {top}"
    stray = sorted(set(top) - allowed)
    assert not stray, (f"stages/{{{','.join(stray)}}}.py are not entry points: move them to the "
                       "subpackage of their concern (runtime, reporting, plumbing, data, ...)")


@pytest.mark.parametrize("subpackage", ["data", "nets", "methods", "runtime", "reporting",
                                        "plumbing"])
def test_the_library_never_imports_an_entry_point(subpackage):
    entries = {f"{PACKAGE}.{name}" for name in entry_points() | USER_COMMANDS}
    graph = stages_graph()
    bad = {m: sorted(graph[m] & entries) for m in graph
           if m.startswith(f"{PACKAGE}.{subpackage}") and graph[m] & entries}
    assert not bad, f"library modules importing an entry point: {bad}"


def test_no_command_imports_another():
    entries = {f"{PACKAGE}.{name}" for name in entry_points() | USER_COMMANDS}
    graph = stages_graph()
    bad = {m: sorted(graph[m] & entries) for m in sorted(entries) if graph[m] & entries}
    assert not bad, ("commands importing other commands (move what they share to the library): "
                     f"{bad}")


def test_every_subpackage_says_what_it_holds():
    for init in sorted((REPO / PACKAGE).glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 10, f"{init}: no docstring saying what it holds"
