"""Reverse mode of wrapped functions: `grad`, `value_and_grad`, `vjp`, `linearize`, `jacrev`."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import (
    CASES,
    SCALAR_CASES,
    assert_trees_close,
    check_against_jax,
    int_arg_fn,
    tangents_like,
    vector,
    x64_matrix,
)


def _vjp(f, case):
    def run(*args):
        g, diff_args = case.on_diff_args(f, args)
        out, pullback = jax.vjp(g, *diff_args)
        return out, pullback(tangents_like(out))
    return run


def _linearize(f, case):
    def run(*args):
        g, diff_args = case.on_diff_args(f, args)
        out, f_jvp = jax.linearize(g, *diff_args)
        return out, f_jvp(*tangents_like(diff_args)), f_jvp(*diff_args)
    return run


REVERSE = {
    "vjp": _vjp,
    "linearize": _linearize,
    "jacrev": lambda f, c: jax.jacrev(f, argnums=c.argnums, holomorphic=c.holomorphic),
}
SCALAR_REVERSE = {
    "grad": lambda f, c: c.grad(f),
    "value_and_grad": lambda f, c: jax.value_and_grad(f, argnums=c.argnums,
                                                      holomorphic=c.holomorphic),
}


@pytest.mark.parametrize("case,x64", x64_matrix(CASES), indirect=["x64"])
def test_reverse_mode_family(case, x64):
    """grad, value_and_grad, vjp, linearize and jacrev, all inside one jax.jit."""
    check_against_jax(case, {**REVERSE, **(SCALAR_REVERSE if case.scalar else {})})


@pytest.mark.parametrize(
    "case", [c for c in SCALAR_CASES if c.name in ("scan", "holomorphic")], ids=str)
def test_reverse_mode_family_eagerly(case):
    """The same transformations without an enclosing jit: each world_call runs its impl rule."""
    check_against_jax(case, {**REVERSE, **SCALAR_REVERSE}, jit=False)


def test_grad_of_integer_argument_with_allow_int(x64):
    x, n = vector(), jnp.arange(1, 5)
    wf = jaxworld.wrap(int_arg_fn)
    actual = jax.grad(wf, argnums=(0, 1), allow_int=True)(x, n)
    expected = jax.grad(int_arg_fn, argnums=(0, 1), allow_int=True)(x, n)
    assert actual[1].dtype == expected[1].dtype == jax.dtypes.float0
    assert actual[1].shape == expected[1].shape
    assert_trees_close(actual[0], expected[0])


def test_grad_of_integer_argument_without_allow_int_raises_like_jax():
    x, n = vector(), jnp.arange(1, 5)
    with pytest.raises(TypeError) as plain:
        jax.grad(int_arg_fn, argnums=1)(x, n)
    with pytest.raises(TypeError, match=re.escape(str(plain.value))):
        jax.grad(jaxworld.wrap(int_arg_fn), argnums=1)(x, n)


def test_grad_with_aux_and_pytree_output(x64):
    def f(x):
        return jnp.sum(jnp.sin(x) * x), {"aux": jnp.cos(x), "n": jnp.arange(2)}

    x = vector()
    assert_trees_close(jax.grad(jaxworld.wrap(f), has_aux=True)(x), jax.grad(f, has_aux=True)(x))


def test_grad_wrt_some_outputs_of_multi_output_function(x64):
    # Only one of three outputs is differentiated: the others' cotangents are symbolic zeros.
    def f(x):
        return jnp.sin(x), jnp.sum(x ** 2), jnp.argmax(x)

    x = vector()
    wf = jaxworld.wrap(f)
    for i in (0, 1):
        plain = jax.grad(lambda x, i=i: jnp.sum(f(x)[i] * 1.5))(x)
        assert_trees_close(jax.grad(lambda x, i=i: jnp.sum(wf(x)[i] * 1.5))(x), plain)


def test_jaxworld_vjp_pullback_matches_jax_vjp(x64):
    def f(x):
        return jnp.sin(x) * jnp.exp(x)

    x = vector()
    out, pullback = jaxworld.vjp(f, x)
    expected_out, expected_pullback = jax.vjp(f, x)
    assert isinstance(pullback, jaxworld.OpaqueClosure)
    ct = tangents_like(out)
    assert_trees_close(out, expected_out)
    assert_trees_close(pullback(ct), expected_pullback(ct))
    # Forward over the pullback: the second derivative along a direction.
    v = jnp.ones_like(x)
    actual = jax.jvp(lambda c: pullback(c)[0], (ct,), (v,))
    expected = jax.jvp(lambda c: expected_pullback(c)[0], (ct,), (v,))
    assert_trees_close(actual, expected)


def test_prepared_grad_operators_match_jax(x64):
    def f(x):
        return jnp.sum(jnp.tanh(x) ** 3)

    x = vector()
    assert_trees_close(jaxworld.grad(f)(x), jax.grad(f)(x))
    assert_trees_close(jaxworld.value_and_grad(f)(x), jax.value_and_grad(f)(x))
    assert_trees_close(jaxworld.jacrev(jnp.sin)(x), jax.jacrev(jnp.sin)(x))


def test_grad_result_is_finite_difference_close(enable_x64):
    # Second oracle: central differences in float64.
    f = jaxworld.wrap(lambda x: jnp.sum(jnp.sin(x) * jnp.exp(0.3 * x)))
    x = np.linspace(0.1, 0.8, 4)
    eps = 1e-6
    fd = [(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(4)]
    np.testing.assert_allclose(jax.grad(f)(x), np.array(fd), rtol=1e-8)
