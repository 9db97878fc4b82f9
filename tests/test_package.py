"""The package as a whole: `__version__`, and the `Raises:` sections of the public API (issue #16).

Every public callable of `jaxworld` and `jaxworld.testing` that raises documents it: each entry
of `RAISING` is called the wrong way, must raise that exception, and the callable's docstring
must name it under ``Raises:``. A callable whose own body raises and has no entry fails the
completeness check. Functions defined in `_epoch.py`, `_closure.py` and `_primitive.py` are not
covered yet (their owners add their sections; issue #16).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import types
from importlib import metadata

import jax
import jax.numpy as jnp
import pytest

import jaxworld
import jaxworld.testing as jt
from jaxworld import _version

from .helpers import notebook

X = jnp.ones(3)
S = jt.Scenario(lambda x, y: jnp.sum(x * y), (X, X), "grad", name="s")
WS = jt.WorldScenario("world: w", "def f(x):\n    return jnp.sum(x)\n", "", "grad", (X,))


def test_version_comes_from_package_metadata():
    assert jaxworld.__version__ == metadata.version("jaxworld")


def test_version_of_a_source_tree_that_is_not_installed(monkeypatch, tmp_path):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    (tmp_path / "jaxworld").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "jaxworld"\nversion = "9.8.7"\n')
    assert _version._from_source_tree(str(tmp_path / "jaxworld")) == "9.8.7"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "1.0"\n')
    assert _version._from_source_tree(str(tmp_path / "jaxworld")) is None
    # This checkout's own pyproject.toml, as an uninstalled tree reads it.
    assert re.fullmatch(r"\d+\.\d+\.\d+.*|0\+unknown", _version.version())


def _unhashable_static():
    jaxworld.wrap(lambda x, n: x, static_argnums=1)(X, [1])


def _bad_cotangent():
    _, pullback = jaxworld.vjp(lambda x: jnp.sum(x ** 2), X)
    pullback(jnp.ones(2))


def _prepared_mismatch():
    op = jt.prepare(jt.Scenario(lambda x: jnp.sum(x ** 2), (X,), "grad"))
    op(jnp.ones(4))


# (public name, a wrong call, the exception it raises)
def _a_closure():
    return jax.make_jaxpr(jaxworld.wrap(jnp.sin))(1.0).eqns[0].params["closure"]


RAISING = [
    ("wrap", lambda: jaxworld.wrap(3), TypeError),
    ("wrap", lambda: jaxworld.wrap(lambda x: x, static_argnums=4), ValueError),
    ("wrap", _unhashable_static, TypeError),
    ("jit", lambda: jaxworld.jit(3), TypeError),
    ("jit", lambda: jaxworld.jit(lambda x: x, static_argnums=4), ValueError),
    ("grad", lambda: jaxworld.grad(3), TypeError),
    ("value_and_grad", lambda: jaxworld.value_and_grad(3), TypeError),
    ("jacfwd", lambda: jaxworld.jacfwd(3), TypeError),
    ("jacrev", lambda: jaxworld.jacrev(3), TypeError),
    ("hessian", lambda: jaxworld.hessian(3), TypeError),
    ("hessian", lambda: jaxworld.hessian(lambda x: x, mode="sideways"), ValueError),
    ("hvp", lambda: jaxworld.hvp(3), TypeError),
    ("jvp", lambda: jaxworld.jvp(lambda x: x, X, X), TypeError),
    ("vjp", lambda: jaxworld.vjp(3, X), TypeError),
    ("Pullback", _bad_cotangent, TypeError),
    ("set_policy", lambda: jaxworld.set_policy("sometimes"), ValueError),
    ("policy", lambda: jaxworld.policy("sometimes").__enter__(), ValueError),
    ("explain", lambda: jaxworld.explain(3), TypeError),
    ("testing.Scenario", lambda: jt.Scenario(3, (X,), "grad"), TypeError),
    ("testing.Scenario", lambda: jt.Scenario(jnp.sin, (X,), "gradient"), ValueError),
    ("testing.WorldScenario", lambda: jt.WorldScenario("w", "", "", "grad", (X,)), ValueError),
    ("testing.WorldScenario", lambda: jt.WorldScenario("world", 3, "", "grad", (X,)), TypeError),
    ("testing.World", lambda: jt.World(namespace=[]), TypeError),
    ("testing.closurify", lambda: jt.closurify(WS), TypeError),
    ("testing.closurify", lambda: jt.closurify(S.replace(fun=jnp.sum, args=(X,))), ValueError),
    ("testing.constantify", lambda: jt.constantify(WS), TypeError),
    ("testing.constantify",
     lambda: jt.constantify(S.replace(fun=jnp.sum, args=(X,), operator="hvp")), ValueError),
    ("testing.batchify", lambda: jt.batchify(S, size=0), ValueError),
    ("testing.batchify", lambda: jt.batchify(WS), TypeError),
    ("testing.jitify", lambda: jt.jitify(jt.jitify(S)), ValueError),
    ("testing.jitify", lambda: jt.jitify(WS), TypeError),
    ("testing.x64ify", lambda: jt.x64ify(WS), TypeError),
    ("testing.matches", lambda: jt.matches("(grad", "grad"), ValueError),
    ("testing.check", lambda: jt.check([3]), TypeError),
    ("testing.check", lambda: jt.check([S], pattern="(grad"), ValueError),
    ("testing.mutants", lambda: jt.mutants(WS), TypeError),
    ("testing.mutants", lambda: jt.mutants(jt.jitify(S)), ValueError),
    ("testing.mutants_of", lambda: jt.mutants_of([3]), TypeError),
    ("testing.scenarios_for", lambda: jt.scenarios_for(3, X), TypeError),
    ("testing.scenarios_for", lambda: jt.scenarios_for(jnp.sum), ValueError),
    ("testing.parametrize", lambda: jt.parametrize([3]), TypeError),
    ("testing.parametrize", lambda: jt.parametrize([S, S]), ValueError),
    ("testing.assert_passes", lambda: jt.assert_passes(3), TypeError),
    ("testing.assert_passes",
     lambda: jt.assert_passes(S.replace(reference=(X * 0.0, X * 0.0))), AssertionError),
    ("testing.PreparedOperator", _prepared_mismatch, jt.PreparationMismatchError),
    ("OpaqueClosure", lambda: _a_closure()(X), TypeError),  # traced for f32[], called on f32[3]
]


def _public(name: str):
    module, _, attr = name.rpartition(".")
    return getattr(jt if module == "testing" else jaxworld, attr)


def _raises_section(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    match = re.search(r"^Raises:\n((?:[ \t]+.*\n?|\n)*)", doc, re.M)
    return match.group(1) if match else ""


@pytest.mark.parametrize("name,call,exception", RAISING,
                         ids=[f"{n}-{e.__name__}-{i}" for i, (n, _, e) in enumerate(RAISING)])
def test_public_callable_raises_what_its_docstring_says(name, call, exception):
    with pytest.raises(exception):
        call()
    section = _raises_section(_public(name))
    assert re.search(rf"^\s+{exception.__name__}:", section, re.M), (
        f"{name}: raises {exception.__name__} but its docstring's Raises: section does not "
        f"name it:\n{section or '(no Raises: section)'}")


def test_operators_and_wrap_raise_stale_closure_error_under_the_error_policy():
    ns = notebook("def g(x):\n    return jnp.sin(x)\ndef f(x):\n    return jnp.sum(g(x) ** 2)\n")
    made = {"wrap": jaxworld.wrap(ns["f"]), "grad": jaxworld.grad(ns["f"]),
            "value_and_grad": jaxworld.value_and_grad(ns["f"]),
            "jacfwd": jaxworld.jacfwd(ns["f"]), "jacrev": jaxworld.jacrev(ns["f"]),
            "hessian": jaxworld.hessian(ns["f"]), "jit": jaxworld.jit(ns["f"])}
    hvp = jaxworld.hvp(ns["f"])
    for op in made.values():
        op(X)
    hvp(X, X)
    notebook("def g(x):\n    return jnp.cos(x)\n", ns)
    jaxworld.advance()
    with jaxworld.policy("error"):
        for name, op in [*made.items(), ("hvp", lambda x: hvp(x, x))]:
            with pytest.raises(jaxworld.StaleClosureError):
                op(X)
            assert re.search(r"^\s+StaleClosureError:", _raises_section(_public(name)), re.M), name


def _raised_in_body(obj) -> set[str]:
    """Exception names raised directly in the body of `obj` (or its __init__/__post_init__/
    __call__ for a class), outside nested functions."""
    targets = [obj]
    if isinstance(obj, type):
        targets = [vars(obj)[m] for m in ("__init__", "__post_init__", "__call__")
                   if m in vars(obj)]
    names = set()
    for target in targets:
        try:
            node = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(target)))).body[0]
        except (OSError, TypeError):
            continue
        stack = list(ast.iter_child_nodes(node))
        while stack:
            child = stack.pop()
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                  ast.ClassDef)):
                continue
            if isinstance(child, ast.Raise) and isinstance(child.exc, ast.Call):
                func = child.exc.func
                if isinstance(func, ast.Name) and func.id[:1].isupper():
                    names.add(func.id)
            stack.extend(ast.iter_child_nodes(child))
    return names


def _public_callables():
    for prefix, module in (("", jaxworld), ("testing.", jt)):
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if attr.startswith("_") or isinstance(obj, types.ModuleType) or not callable(obj):
                continue
            if not (getattr(obj, "__module__", "") or "").startswith("jaxworld"):
                continue
            yield prefix + attr, obj


def test_every_public_callable_whose_body_raises_is_in_the_table_and_documents_it():
    covered = {(name, e.__name__) for name, _, e in RAISING}
    missing = []
    for name, obj in _public_callables():
        for exc in sorted(_raised_in_body(obj)):
            if (name, exc) not in covered:
                missing.append(f"{name} raises {exc}")
    assert not missing, ("public callables that raise without a RAISING entry (add one, and a "
                         "Raises: section):\n" + "\n".join(missing))
