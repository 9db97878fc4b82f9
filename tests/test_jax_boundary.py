"""jaxworld's boundary with JAX (issue #16 item 1): JAX privates are named in `_compat.py` only.

Reads the source of every jaxworld module (`ast`): none but `_compat.py` imports from `jax._src`;
what modules import from `_compat` are named symbols, never a JAX module object: a read through
one fails the test (name what you need in `_compat.py` instead).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import jaxworld
from jaxworld import _compat

MODULES = {info.name: Path(importlib.util.find_spec(info.name).origin)
           for info in pkgutil.walk_packages(jaxworld.__path__, "jaxworld.")}
MODULES["jaxworld"] = Path(jaxworld.__file__)

def _jax_private_imports(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jax._src"):
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("jax._src")]
        elif isinstance(node, ast.Attribute) and ast.unparse(node).startswith("jax._src"):
            found.append(ast.unparse(node))
    return found


def _module_reads(tree: ast.Module) -> set[str]:
    """`alias.attr` for each name imported from `_compat` that is a module object."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_compat"):
            for a in node.names:
                if inspect.ismodule(getattr(_compat, a.name, None)):
                    aliases[a.asname or a.name] = a.name
    return {f"{aliases[n.value.id]}.{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id in aliases}


def test_only_compat_imports_jax_private_modules():
    offenders = {name: found for name, path in MODULES.items() if name != "jaxworld._compat"
                 if (found := _jax_private_imports(ast.parse(path.read_text())))}
    assert offenders == {}, (
        f"JAX-private imports outside jaxworld/_compat.py: {offenders}. Name what you need in "
        "_compat.py (with `_private(...)` and why jaxworld needs it) and import it from there.")


def test_no_reads_through_jax_module_objects():
    reads = {name: sorted(found) for name, path in MODULES.items() if name != "jaxworld._compat"
             if (found := _module_reads(ast.parse(path.read_text())))}
    assert not reads, (
        f"reads through a JAX module object exported by _compat: {reads}. Export the name "
        "itself from jaxworld/_compat.py (feature-tested with `_private` if it is private) and "
        "import that.")


def test_compat_exports_names_feature_tested():
    # Every private name is fetched through `_private`, which names the JAX version and the fix.
    try:
        _compat._private(_compat._core, "a_name_jax_never_had")
    except ImportError as error:
        message = str(error)
    else:
        raise AssertionError("_private accepted a missing name")
    assert "jax._src.core.a_name_jax_never_had" in message
    assert f"jax {_compat.CHECKED_ON}" in message and "_compat.py" in message
    jax_modules = sorted(n for n, v in vars(_compat).items()
                         if inspect.ismodule(v) and v.__name__.startswith("jax._src")
                         and not n.startswith("_"))
    assert jax_modules == []  # names, never module objects


def test_public_names_are_the_ones_jax_uses():
    # A public re-export that stopped being the object JAX's own tables use would register rules
    # nobody reads; check the identity of each.
    from jax._src import core
    from jax._src.interpreters import ad, partial_eval

    assert _compat.ClosedJaxpr is core.ClosedJaxpr and _compat.Primitive is core.Primitive
    assert _compat.primitive_jvps is ad.primitive_jvps
    assert _compat.dce_rules is partial_eval.dce_rules
    assert _compat.trace_to_jaxpr_dynamic is partial_eval.trace_to_jaxpr_dynamic
    assert _compat.JaxprTypeError is core.JaxprTypeError
