"""The change matrix (issue #3): each change, made between preparing a Hessian and calling it again
after `jaxworld.advance()`, gives the new world's answer.

Every row runs twice: with `jaxworld.hessian(f)` and with a plain `jax.jit(jax.hessian(wrap(f)))`,
both prepared (and called) before the change. The oracle is plain JAX traced fresh in the new
world: `jax.jit(jax.hessian(...))` of a fresh lambda calling `f`, so no JAX cache can hand back an
old trace.
Each row also checks that the change really changes the Hessian, so a stale answer cannot pass.
"""

from __future__ import annotations

import functools
import importlib
import sys
import textwrap
import types
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook

X = np.array([0.3, -0.7, 1.1], dtype=np.float32)


def fresh_hessian(ns: dict) -> jax.Array:
    """Plain JAX in the current world: a new callable each time, so no JAX cache applies."""
    return jax.jit(jax.hessian(lambda x: ns["f"](x)))(jnp.asarray(X))


def prepare_jaxworld_hessian(f):
    return jaxworld.hessian(f)


def prepare_plain_jit_hessian(f):
    return jax.jit(jax.hessian(jaxworld.wrap(f)))


PREPARED = pytest.mark.parametrize(
    "prepare", [prepare_jaxworld_hessian, prepare_plain_jit_hessian],
    ids=["jaxworld.hessian", "jax.jit(jax.hessian(wrap(f)))"])


def run(ns: dict, source: str) -> None:
    notebook(source, ns)


def new_namespace() -> dict:
    return {"jax": jax, "jnp": jnp, "np": np, "functools": functools}


def check_change(prepare, ns: dict, change) -> None:
    """Prepare and call before `change`; after it and an advance, equal plain JAX's new answer."""
    H = prepare(ns["f"])
    x = jnp.asarray(X)
    before = H(x)
    assert_trees_close(before, fresh_hessian(ns))
    H(x)  # steady state, still the old world
    if callable(change):
        change(ns)
    else:
        run(ns, change)
    expected = fresh_hessian(ns)
    assert not np.allclose(before, expected), "the change must change the Hessian"
    jaxworld.advance()
    assert_trees_close(H(x), expected)
    assert_trees_close(H(x), expected)  # and it stays there


@PREPARED
def test_global_helper_redefined(prepare):
    ns = new_namespace()
    run(ns, """
        def g(x):
            return jnp.sin(x)
        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    check_change(prepare, ns, """
        def g(x):
            return 3.0 * jnp.cos(x)
    """)


@PREPARED
def test_helper_two_calls_deep_redefined(prepare):
    ns = new_namespace()
    run(ns, """
        def h(x):
            return jnp.sin(x)
        def g(x):
            return h(x) * x
        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    check_change(prepare, ns, """
        def h(x):
            return jnp.exp(x / 2)
    """)


@PREPARED
def test_global_float_rebound(prepare):
    ns = new_namespace()
    run(ns, """
        a = 2.0
        def f(x):
            return jnp.sum(a * x ** 3)
    """)
    check_change(prepare, ns, "a = 5.0")


@PREPARED
def test_global_jax_array_rebound(prepare):
    ns = new_namespace()
    run(ns, """
        w = jnp.array([1.0, 2.0, 3.0])
        def f(x):
            return jnp.sum(w * x ** 3)
    """)
    check_change(prepare, ns, "w = jnp.array([-4.0, 0.5, 6.0])")


@PREPARED
def test_global_numpy_array_mutated_in_place(prepare):
    ns = new_namespace()
    run(ns, """
        w = np.array([1.0, 2.0, 3.0], dtype=np.float32)
        def f(x):
            return jnp.sum(w * x ** 3)
    """)
    identity = id(ns["w"])
    check_change(prepare, ns, "w[:] = [-4.0, 0.5, 6.0]")
    assert id(ns["w"]) == identity  # really in place


@PREPARED
def test_closure_cell_changed_through_nonlocal(prepare):
    ns = new_namespace()
    run(ns, """
        def make():
            s = 1.0
            def f(x):
                return jnp.sum(s * jnp.sin(x) ** 2)
            def set_s(value):
                nonlocal s
                s = value
            return f, set_s
        f, set_s = make()
    """)
    check_change(prepare, ns, "set_s(4.0)")


@PREPARED
def test_function_defaults_changed(prepare):
    ns = new_namespace()
    run(ns, """
        def f(x, c=1.0):
            return jnp.sum(c * x ** 3)
    """)
    check_change(prepare, ns, "f.__defaults__ = (3.0,)")


@PREPARED
def test_helper_code_swapped(prepare):
    ns = new_namespace()
    run(ns, """
        def g(x):
            return jnp.sin(x)
        def g2(x):
            return 2.0 * jnp.cos(x)
        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    helper = ns["g"]
    check_change(prepare, ns, "g.__code__ = g2.__code__")
    assert ns["g"] is helper  # same function object, new code


@PREPARED
def test_method_replaced_on_class_of_global_object(prepare):
    ns = new_namespace()
    run(ns, """
        class Model:
            def act(self, x):
                return jnp.sin(x)
        model = Model()
        def f(x):
            return jnp.sum(model.act(x) ** 2)
    """)
    check_change(prepare, ns, """
        def act(self, x):
            return 2.0 * jnp.cos(x)
        Model.act = act
    """)


@PREPARED
def test_defjvp_called_again_on_custom_jvp(prepare):
    ns = new_namespace()
    run(ns, """
        @jax.custom_jvp
        def s(x):
            return jnp.sin(x)
        @s.defjvp
        def s_jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            return jnp.sin(x), jnp.cos(x) * dx
        def f(x):
            return jnp.sum(s(x) ** 2)
    """)
    custom = ns["s"]
    check_change(prepare, ns, """
        @s.defjvp
        def s_jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            return jnp.sin(x), 3.0 * x * dx
    """)
    assert ns["s"] is custom  # the same custom_jvp object, a new rule


@PREPARED
def test_global_partial_rebound(prepare):
    ns = new_namespace()
    run(ns, """
        def scaled(x, c):
            return c * jnp.sin(x)
        g = functools.partial(scaled, c=1.0)
        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    check_change(prepare, ns, "g = functools.partial(scaled, c=3.0)")


@pytest.fixture
def helper_module(tmp_path, monkeypatch):
    """A real helper module in a temporary directory on sys.path, removed afterwards."""
    name = f"jaxworld_test_helper_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale .pyc on a same-second edit

    def write(source: str):
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()

    yield name, write
    sys.modules.pop(name, None)


@PREPARED
def test_importlib_reload_of_changed_helper_module(prepare, helper_module):
    name, write = helper_module
    write("""
        import jax.numpy as jnp
        def g(x):
            return jnp.sin(x)
    """)
    ns = new_namespace()
    ns["helpers"] = importlib.import_module(name)
    run(ns, """
        def f(x):
            return jnp.sum(helpers.g(x) ** 2)
    """)

    def change(ns):
        write("""
            import jax.numpy as jnp
            def g(x):
                # the edited helper file
                return 2.0 * jnp.cos(x) + x
        """)
        importlib.reload(ns["helpers"])

    check_change(prepare, ns, change)


@PREPARED
def test_module_attribute_monkeypatched(prepare, monkeypatch):
    module = types.ModuleType(f"jaxworld_test_patched_{uuid.uuid4().hex[:8]}")
    ns_module = notebook("""
        scale = 1.0
        def g(x):
            return jnp.sin(x)
    """)
    for key in ("scale", "g"):
        setattr(module, key, ns_module[key])
    ns = new_namespace()
    ns["lib"] = module
    run(ns, """
        def f(x):
            return jnp.sum(lib.scale * lib.g(x) ** 2)
    """)

    def change(ns):
        def patched(x):
            return jnp.tanh(2.0 * x)
        monkeypatch.setattr(module, "g", patched)

    check_change(prepare, ns, change)


def test_plain_jax_pullback_and_linearization_made_before_a_change_stay_in_their_world():
    """A plain `jax.vjp` pullback / `jax.linearize` function holds residuals of the world it was
    made in; called after a change and an advance it must give that world's answer, never the new
    world's closure applied to the old residuals (an answer of no world)."""
    ns = new_namespace()
    run(ns, """
        def g(x):
            return jnp.sin(2.0 * x)
        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    x, v = jnp.asarray(X), jnp.array([1.0, -2.0, 0.5], dtype=np.float32)
    old_grad = jax.jit(jax.grad(lambda y: ns["f"](y)))(x)
    old_jvp = jax.jit(lambda y, t: jax.jvp(lambda z: ns["f"](z), (y,), (t,))[1])(x, v)
    wrapped = jaxworld.wrap(ns["f"])
    _, pullback = jax.vjp(wrapped, x)
    _, linearized = jax.linearize(wrapped, x)
    run(ns, """
        def g(x):
            return 3.0 * jnp.exp(x)
    """)
    jaxworld.advance()
    new_grad = jax.jit(jax.grad(lambda y: ns["f"](y)))(x)
    assert not np.allclose(old_grad, new_grad)
    assert_trees_close(pullback(jnp.float32(1.0))[0], old_grad)
    assert_trees_close(linearized(v), old_jvp)
    assert_trees_close(jax.grad(wrapped)(x), new_grad)  # a new computation: the new world
