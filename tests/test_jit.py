"""Eager calls and `jax.jit` of wrapped functions agree with plain JAX (issue #2)."""

import jax
import jax.numpy as jnp
import pytest

import jaxworld

from .helpers import CASES, assert_trees_close, check_against_jax, vector, x64_matrix


@pytest.mark.parametrize("case,x64", x64_matrix(CASES), indirect=["x64"])
def test_eager(case, x64):
    check_against_jax(case, lambda f, c: f)


@pytest.mark.parametrize("case,x64", x64_matrix(CASES), indirect=["x64"])
def test_jit(case, x64):
    check_against_jax(case, lambda f, c: c.jit(f))


def _helper(x):
    return jnp.tanh(x) * x


def test_jit_of_function_calling_wrapped_helper_twice(x64):
    def outer(h):
        return lambda x: jnp.sum(h(x) * h(2.0 * x))

    x = vector()
    wrapped = jax.jit(outer(jaxworld.wrap(_helper)))
    assert_trees_close(wrapped(x), jax.jit(outer(_helper))(x))


def test_wrapped_function_calling_wrapped_helper(x64):
    inner = jaxworld.wrap(_helper)
    outer = jaxworld.wrap(lambda x: jnp.sum(inner(x) ** 2))
    plain = lambda x: jnp.sum(_helper(x) ** 2)  # noqa: E731
    x = vector()
    assert_trees_close(outer(x), plain(x))
    assert_trees_close(jax.jit(outer)(x), jax.jit(plain)(x))
    assert_trees_close(jax.jit(jax.grad(outer))(x), jax.jit(jax.grad(plain))(x))
    assert_trees_close(jax.jit(jax.hessian(outer))(x), jax.jit(jax.hessian(plain))(x))


def test_eager_calls_compile_once_and_trace_once():
    wf = jaxworld.wrap(_helper)
    x = vector()
    first = wf(x)
    second = wf(x + 1)
    assert_trees_close(first, _helper(x))
    assert_trees_close(second, _helper(x + 1))
    assert jaxworld.stats(wf)["traces"] == 1
    assert jaxworld.stats(wf)["compilations"] == 1


def test_jit_retraces_nothing_on_second_call():
    wf = jaxworld.wrap(_helper)
    jitted = jax.jit(wf)
    x = vector()
    jitted(x)
    jaxworld.reset_stats()
    assert_trees_close(jitted(x + 1), _helper(x + 1))
    assert jaxworld.stats(wf) == dict.fromkeys(jaxworld.stats(wf), 0)


def test_jit_lowers_to_plain_stablehlo_without_callbacks():
    wf = jaxworld.wrap(_helper)
    text = jax.jit(wf).lower(vector()).as_text()
    # _helper's own operations, lowered in the module: no host callback, no custom call.
    assert "stablehlo.tanh" in text
    assert "callback" not in text.lower() and "custom_call" not in text


def test_jit_with_static_argnames_through_wrap(x64):
    wf = jaxworld.wrap(lambda x, *, k: jnp.sum(x ** k), static_argnames="k")
    plain = lambda x, *, k: jnp.sum(x ** k)  # noqa: E731
    x = vector()
    for k in (2, 3):
        assert_trees_close(jax.jit(wf, static_argnames="k")(x, k=k),
                           jax.jit(plain, static_argnames="k")(x, k=k))
