"""No import cycle in jaxworld (issue #12 item 5): each module imports alone; the graph is a DAG.

Two checks, parametrized over every module `pkgutil.walk_packages` finds:

- *at run time*: a fresh interpreter imports the module first, under an import hook that fails if
  any import statement asks for a module that is still being initialized (a cycle that happens
  to work because of import order: `from x import name` then depends on how far `x` got);
- *statically*: the imports written in the module, at module level *and* inside functions (a
  lazy import that works around a cycle is still a cycle: `_closure` used to import `_primitive`
  inside `OpaqueClosure.__call__`), must not lead back to it. Imports under ``if TYPE_CHECKING:``
  are for annotations only and are left out, and so are a module's imports of its own enclosing
  packages (`import jaxworld` in a submodule reaches the public API, which the package's
  `__init__` assembles from the submodules).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jaxworld

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    found = {"jaxworld": Path(jaxworld.__file__)}
    for info in pkgutil.walk_packages(jaxworld.__path__, "jaxworld."):
        found[info.name] = Path(importlib.util.find_spec(info.name).origin)
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside an ``if TYPE_CHECKING:`` block."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
                "TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for inner in node.body:
                skip.update(id(n) for n in ast.walk(inner))
    return skip


def _imports(name: str) -> set[str]:
    """The jaxworld modules `name` imports anywhere in its source (see the module docstring)."""
    tree = ast.parse(MODULES[name].read_text())
    skip = _type_checking_only(tree)
    package = name if _is_package(name) else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            subs = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            # `from . import _epoch` imports the submodule; `from ._compat import core`, the module.
            targets.update(subs if subs and node.module is None else {base, *subs})
    return {t for t in targets if t in MODULES and t != name and t not in _ancestors(name)}


GRAPH = {name: _imports(name) for name in MODULES}


def _cycle_through(start: str) -> list[str] | None:
    """A path start -> ... -> start in `GRAPH`, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(GRAPH[node]):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


_HOOK = textwrap.dedent("""
    import builtins, importlib, importlib.util, sys
    real_import = builtins.__import__
    problems = []

    def initializing(name):
        module = sys.modules.get(name)
        spec = getattr(module, "__spec__", None)
        return module is not None and getattr(spec, "_initializing", False)

    def hooked(name, globals=None, locals=None, fromlist=(), level=0):
        importer = (globals or {}).get("__name__", "")
        if importer.startswith("jaxworld"):
            package = (globals or {}).get("__package__") or importer
            full = importlib.util.resolve_name("." * level + name, package) if level else name
            wanted = [full] + [f"{full}.{item}" for item in fromlist or () if item != "*"]
            mine = importer.split(".")
            ancestors = {".".join(mine[:i]) for i in range(1, len(mine) + 1)}
            for target in wanted:
                if (target.startswith("jaxworld") and target not in ancestors
                        and initializing(target)):
                    problems.append(f"{importer} imports {target} while {target} is still "
                                    "being initialized (an import cycle)")
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = hooked
    importlib.import_module(sys.argv[1])
    if problems:
        sys.exit("\\n".join(problems))
""")


@pytest.mark.slow  # ~2 s a module (a fresh interpreter imports jax): ~80 s in all
@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_alone_in_a_fresh_interpreter(name):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", _HOOK, name], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"`import {name}` alone, in a fresh interpreter, failed (exit {done.returncode}):\n"
        f"{done.stderr[-3000:]}")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_cycle_through(name):
    cycle = _cycle_through(name)
    assert cycle is None, (
        f"import cycle: {' -> '.join(cycle)}. Move what the lower module needs below it (see "
        "the import graph in jaxworld/_validity.py's docstring) instead of importing upwards, "
        "even lazily inside a function.")


def test_the_graph_is_what_the_validity_docstring_says():
    # `_validity` and `_primitive` sit below `_closure`, which sits below `_wrap`.
    below_closure = ("jaxworld._validity", "jaxworld._primitive")
    for low in below_closure:
        assert "jaxworld._closure" not in GRAPH[low] and "jaxworld._wrap" not in GRAPH[low]
    assert set(below_closure) <= GRAPH["jaxworld._closure"]
    assert "jaxworld._closure" in GRAPH["jaxworld._wrap"]
    # Imports inside functions count: `_cli` imports `_bench` only when a command needs it.
    assert "jaxworld._bench" in GRAPH["jaxworld._cli"]


def test_the_static_check_finds_a_lazy_cycle(monkeypatch):
    # The check itself can fail: a function-level import of `_closure` from `_primitive` (the
    # cycle this test was written against) is found.
    monkeypatch.setitem(GRAPH, "jaxworld._primitive",
                        GRAPH["jaxworld._primitive"] | {"jaxworld._closure"})
    assert _cycle_through("jaxworld._primitive") == [
        "jaxworld._primitive", "jaxworld._closure", "jaxworld._primitive"]
