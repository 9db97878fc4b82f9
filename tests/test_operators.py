"""Prepared, epoch-aware operators equal their JAX counterparts; `jaxworld.jit`; pullbacks.

The oracle is always the same JAX transformation applied to the plain (unwrapped) function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook

X = jnp.array([0.4, -1.3, 0.9])
Y = jnp.array([1.5, -0.2])
V = jnp.array([0.3, 1.0, -2.0])


def f(x):
    return jnp.sum(jnp.sin(x) ** 2 * x) + jnp.prod(jnp.cos(x))


def f2(x, y):
    return jnp.sum(jnp.tanh(x) ** 2) * jnp.sum(y ** 3) + jnp.sum(x) * y[0]


def f_aux(x, y):
    return f2(x, y), {"norm": jnp.sum(x ** 2), "y": y}


def vector_fn(x, y):
    return jnp.concatenate([jnp.sin(x) * y[0], y ** 2 * jnp.sum(x)])


# -- first order ------------------------------------------------------------------------------

@pytest.mark.parametrize("argnums", [1, (0, 1)])
@pytest.mark.parametrize("has_aux", [False, True], ids=["plain", "has_aux"])
@pytest.mark.parametrize("name", ["grad", "value_and_grad"])
def test_grad_family_equals_jax(name, argnums, has_aux):
    fun = f_aux if has_aux else f2
    ours = getattr(jaxworld, name)(fun, argnums=argnums, has_aux=has_aux)
    theirs = jax.jit(getattr(jax, name)(fun, argnums=argnums, has_aux=has_aux))
    assert_trees_close(ours(X, Y), theirs(X, Y))
    assert_trees_close(ours(X, Y), theirs(X, Y))  # second call: the compiled path


@pytest.mark.parametrize("argnums", [1, (0, 1)])
@pytest.mark.parametrize("has_aux", [False, True], ids=["plain", "has_aux"])
@pytest.mark.parametrize("name", ["jacfwd", "jacrev"])
def test_jacobians_equal_jax(name, argnums, has_aux):
    if has_aux:
        def fun(x, y):
            return vector_fn(x, y), jnp.sum(x)
    else:
        fun = vector_fn
    ours = getattr(jaxworld, name)(fun, argnums=argnums, has_aux=has_aux)
    theirs = jax.jit(getattr(jax, name)(fun, argnums=argnums, has_aux=has_aux))
    assert_trees_close(ours(X, Y), theirs(X, Y))


def holomorphic_fn(z):
    return jnp.sum(z ** 3 + jnp.sin(z) * z)


Z = jnp.array([0.5 + 0.2j, -1.0 + 0.7j], dtype=jnp.complex64)


@pytest.mark.parametrize("name", ["grad", "value_and_grad", "jacfwd", "jacrev", "hessian"])
def test_holomorphic_equals_jax(name):
    fun = holomorphic_fn if name in ("grad", "value_and_grad", "hessian") else (
        lambda z: jnp.sin(z) * z ** 2)
    ours = getattr(jaxworld, name)(fun, holomorphic=True)
    theirs = jax.jit(getattr(jax, name)(fun, holomorphic=True))
    assert_trees_close(ours(Z), theirs(Z))


@pytest.mark.parametrize("name", ["grad", "value_and_grad", "jacrev"])
def test_allow_int_equals_jax(name):
    def fun(x, n):
        return jnp.sum(x ** 2) * n if name != "jacrev" else x ** 2 * n

    n = jnp.array(3, dtype=jnp.int32)
    ours = getattr(jaxworld, name)(fun, argnums=(0, 1), allow_int=True)(X, n)
    theirs = jax.jit(getattr(jax, name)(fun, argnums=(0, 1), allow_int=True))(X, n)
    ours_leaves, theirs_leaves = jax.tree.leaves(ours), jax.tree.leaves(theirs)
    dtypes = [np.asarray(a).dtype for a in ours_leaves]
    assert dtypes == [np.asarray(b).dtype for b in theirs_leaves]
    for a, b in zip(ours_leaves, theirs_leaves, strict=True):
        if np.asarray(b).dtype == jax.dtypes.float0:
            assert np.asarray(a).shape == np.asarray(b).shape
        else:
            assert_trees_close(a, b)


def test_int_input_without_allow_int_fails_like_jax():
    def fun(x, n):
        return jnp.sum(x ** 2) * n

    n = jnp.array(3, dtype=jnp.int32)
    with pytest.raises(TypeError) as theirs:
        jax.grad(fun, argnums=1)(X, n)
    with pytest.raises(TypeError) as ours:
        jaxworld.grad(fun, argnums=1)(X, n)
    assert "integer" in str(theirs.value) and "integer" in str(ours.value)


# -- Hessians ---------------------------------------------------------------------------------

HESSIAN_ORACLES = {
    "fwd_over_rev": lambda fun, **kw: jax.jacfwd(jax.jacrev(fun, **kw), **kw),
    "rev_over_rev": lambda fun, **kw: jax.jacrev(jax.jacrev(fun, **kw), **kw),
    "fwd_over_fwd": lambda fun, **kw: jax.jacfwd(jax.jacfwd(fun, **kw), **kw),
    "rev_over_fwd": lambda fun, **kw: jax.jacrev(jax.jacfwd(fun, **kw), **kw),
}


@pytest.mark.parametrize("mode", jaxworld.HESSIAN_MODES)
def test_hessian_modes_equal_jax(mode, enable_x64):
    x = X.astype(jnp.float64)
    ours = jaxworld.hessian(f, mode=mode)(x)
    assert_trees_close(ours, jax.jit(HESSIAN_ORACLES[mode](f))(x))
    assert_trees_close(ours, jax.jit(jax.hessian(f))(x))  # every mode is the same Hessian


@pytest.mark.parametrize("mode", jaxworld.HESSIAN_MODES)
@pytest.mark.parametrize("argnums", [1, (0, 1)])
def test_hessian_modes_with_argnums_and_aux(mode, argnums):
    ours = jaxworld.hessian(f_aux, argnums=argnums, has_aux=True, mode=mode)(X, Y)
    theirs = jax.jit(HESSIAN_ORACLES[mode](f_aux, argnums=argnums, has_aux=True))(X, Y)
    assert_trees_close(ours, theirs)


def test_unknown_hessian_mode_is_a_clear_value_error():
    with pytest.raises(ValueError, match="jaxworld.hessian: unknown mode 'fwd_fwd'"):
        jaxworld.hessian(f, mode="fwd_fwd")


def test_hvp_equals_forward_over_reverse():
    ours = jaxworld.hvp(f)(X, V)
    theirs = jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])(X, V)
    assert_trees_close(ours, theirs)
    assert_trees_close(ours, jax.jit(jax.hessian(f))(X) @ V)


def test_jvp_and_vjp_equal_jax():
    assert_trees_close(jaxworld.jvp(vector_fn, (X, Y), (V, Y)), jax.jvp(vector_fn, (X, Y), (V, Y)))
    out, pullback = jaxworld.vjp(vector_fn, X, Y)
    out_jax, pullback_jax = jax.vjp(vector_fn, X, Y)
    assert_trees_close(out, out_jax)
    ct = jnp.arange(5.0)
    assert_trees_close(pullback(ct), pullback_jax(ct))
    assert isinstance(pullback, jaxworld.OpaqueClosure) and pullback.origin is vector_fn


# -- jaxworld.jit -----------------------------------------------------------------------------

def test_jit_equals_jax_jit_with_static_args():
    def fun(x, power):
        return jnp.sum(x ** power)

    ours = jaxworld.jit(fun, static_argnums=1)
    assert_trees_close(ours(X, 3), jax.jit(fun, static_argnums=1)(X, 3))
    assert_trees_close(ours(X, 2), jnp.sum(X ** 2))


def test_jit_retraces_after_a_global_float_is_rebound():
    ns = notebook("""
        scale = 2.0
        def fun(x):
            return jnp.sin(x) * scale
    """)
    ours = jaxworld.jit(ns["fun"])
    assert_trees_close(ours(X), jnp.sin(X) * 2.0)
    assert jaxworld.stats(ours)["traces"] == 1
    jaxworld.reset_stats()

    jaxworld.advance()  # no-op: nothing re-traces
    assert_trees_close(ours(X), jnp.sin(X) * 2.0)
    assert jaxworld.stats(ours)["traces"] == 0

    ns["scale"] = 5.0
    jaxworld.advance()
    assert_trees_close(ours(X), jnp.sin(X) * 5.0)
    assert jaxworld.stats(ours)["traces"] == 1
    assert_trees_close(ours(X), jnp.sin(X) * 5.0)
    assert jaxworld.stats(ours)["traces"] == 1  # once per world


def test_jit_without_advance_keeps_the_old_world():
    ns = notebook("""
        scale = 2.0
        def fun(x):
            return x * scale
    """)
    ours = jaxworld.jit(ns["fun"])
    assert_trees_close(ours(X), X * 2.0)
    ns["scale"] = 3.0
    assert_trees_close(ours(X), X * 2.0)  # code runs in the world it was traced in
    jaxworld.advance()
    assert_trees_close(ours(X), X * 3.0)


# -- pullbacks --------------------------------------------------------------------------------

def test_forward_over_reverse_through_a_pullback_gives_the_hvp():
    def through_pullback(x):
        return jaxworld.vjp(f, x)[1](1.0)[0]

    _, hv = jax.jvp(through_pullback, (X,), (V,))
    assert_trees_close(hv, jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])(X, V))
    _, hv_jit = jax.jit(lambda x, v: jax.jvp(through_pullback, (x,), (v,)))(X, V)
    assert_trees_close(hv_jit, jax.jit(jax.hessian(f))(X) @ V)


def test_pullback_made_before_a_change_rederives_after_advance():
    ns = notebook("""
        def g(x):
            return jnp.sin(x)
        def fun(x):
            return jnp.sum(g(x) ** 2)
    """)
    _, pullback = jaxworld.vjp(ns["fun"], X)
    assert_trees_close(pullback(1.0), jax.vjp(ns["fun"], X)[1](1.0))
    notebook("""
        def g(x):
            return jnp.cos(2.0 * x)
    """, ns)
    stale = pullback(1.0)  # no advance yet: the old world
    assert_trees_close(stale[0], 2 * jnp.sin(X) * jnp.cos(X))
    jaxworld.advance()
    expected = jax.vjp(lambda x: ns["fun"](x), X)[1](1.0)
    assert not np.allclose(stale[0], expected[0])
    assert_trees_close(pullback(1.0), expected)
    # Differentiating the old pullback after the change also uses the new world.
    jvp_out = jax.jvp(lambda ct: pullback(ct)[0], (1.0,), (1.0,))[1]
    assert_trees_close(jvp_out, expected[0])
