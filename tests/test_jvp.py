"""Forward mode of wrapped functions: `jvp` and `jacfwd` (issue #2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxworld

from .helpers import (
    CASES,
    assert_trees_close,
    check_against_jax,
    int_arg_fn,
    mlp,
    mlp_params,
    tangents_like,
    vector,
    x64_matrix,
)


def _jvp(f, case):
    def run(*args):
        g, diff_args = case.on_diff_args(f, args)
        return jax.jvp(g, diff_args, tangents_like(diff_args))
    return run


FORWARD = {
    "jvp": _jvp,
    "jacfwd": lambda f, c: jax.jacfwd(f, argnums=c.argnums, holomorphic=c.holomorphic),
}


@pytest.mark.parametrize("case,x64", x64_matrix(CASES), indirect=["x64"])
def test_forward_mode_family(case, x64):
    """jvp and jacfwd inside one jax.jit."""
    check_against_jax(case, FORWARD)


@pytest.mark.parametrize("case", [c for c in CASES if c.name == "custom_jvp"], ids=str)
def test_forward_mode_family_eagerly(case):
    check_against_jax(case, FORWARD, jit=False)


def test_jvp_with_float0_tangent_for_integer_argument(x64):
    x, n = vector(), jnp.arange(1, 5)
    t = tangents_like(x)
    n_dot = np.zeros(n.shape, dtype=jax.dtypes.float0)
    expected = jax.jvp(int_arg_fn, (x, n), (t, n_dot))
    actual = jax.jvp(jaxworld.wrap(int_arg_fn), (x, n), (t, n_dot))
    assert_trees_close(actual, expected)


def test_jvp_with_symbolic_zero_tangents_in_part_of_a_pytree(x64):
    # Tangents only for the input x; the pytree params enter the world_call with zero tangents.
    params, x = mlp_params(), vector(3)
    wf = jaxworld.wrap(mlp)

    def along_x(f):
        return jax.jit(lambda p, x: jax.jvp(lambda x: f(p, x), (x,), (tangents_like(x),)))

    assert_trees_close(along_x(wf)(params, x), along_x(mlp)(params, x))


def test_jvp_of_multi_output_function_with_integer_output(x64):
    # An integer output has a float0 (symbolic zero) tangent: the derived closure must say so.
    def f(x):
        return jnp.sin(x), jnp.argmax(x), {"sq": x ** 2}

    x = vector()
    expected = jax.jvp(f, (x,), (tangents_like(x),))
    actual = jax.jvp(jaxworld.wrap(f), (x,), (tangents_like(x),))
    assert actual[1][1].dtype == expected[1][1].dtype == jax.dtypes.float0
    drop = lambda out: (out[0], out[2])  # noqa: E731
    assert_trees_close((actual[0], drop(actual[1])), (expected[0], drop(expected[1])))


def test_prepared_jvp_and_jacfwd_operators_match_jax(x64):
    def f(x):
        return jnp.sin(x) * jnp.sum(x ** 2)

    x, v = vector(), tangents_like(vector())
    assert_trees_close(jaxworld.jvp(f, (x,), (v,)), jax.jvp(f, (x,), (v,)))
    assert_trees_close(jaxworld.jacfwd(f)(x), jax.jacfwd(f)(x))
