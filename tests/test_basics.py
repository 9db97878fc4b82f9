"""Smoke tests of the public surface: epoch, closures, opacity, counters."""

import jax
import jax.numpy as jnp
import pytest

import jaxworld

from .helpers import assert_trees_close, primitive_names


def f(x):
    return jnp.sum(jnp.sin(x) ** 2 * x)


def test_epoch_advances_by_one():
    e = jaxworld.epoch()
    assert jaxworld.advance() == e + 1
    assert jaxworld.epoch() == e + 1


def test_wrapped_call_is_one_world_call():
    wf = jaxworld.wrap(f)
    jaxpr = jax.make_jaxpr(wf)(jnp.ones(3))
    assert primitive_names(jaxpr) == ["world_call"]
    closure = jaxpr.eqns[0].params["closure"]
    assert isinstance(closure, jaxworld.OpaqueClosure)
    assert closure.origin is f and closure.derivation is None
    assert "f@epoch" in str(jaxpr) and "0x" not in str(jaxpr)
    assert repr(closure).startswith("<OpaqueClosure f epoch=")
    assert_trees_close(closure(jnp.ones(3)), f(jnp.ones(3)))


def test_hessian_is_opaque_and_cached():
    wf = jaxworld.wrap(f)
    x = jnp.arange(3.0)
    jaxpr = jax.make_jaxpr(jax.hessian(wf))(x)
    names = set(primitive_names(jaxpr))
    assert "world_call" in names and "sin" not in names and "cos" not in names
    jaxworld.reset_stats()
    jax.make_jaxpr(jax.hessian(wf))(x)
    assert jaxworld.stats(wf)["traces"] == 0
    assert jaxworld.stats(wf)["derivations"] == 0


def test_non_callable_is_a_clear_type_error():
    with pytest.raises(TypeError, match="jaxworld.wrap: expected a callable"):
        jaxworld.wrap(3)
