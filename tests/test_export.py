"""`jax.export` of jaxworld computations (issue #7, item 6): a serialized Hessian of a wrapped
function deserializes and runs with plain JAX's results, and contains no host callbacks."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
from jax import export

import jaxworld

from .helpers import assert_trees_close


def helper(x):
    return jnp.tanh(x) * jnp.cos(x)


def f(x):
    return jnp.sum(helper(x) ** 2 + jnp.sin(x[::-1]) * x)


def _no_host_callbacks(text: str) -> None:
    calls = re.findall(r'custom_call[^\n]*?@([\w.]+)', text) + re.findall(
        r'call_target_name\s*=\s*"([^"]+)"', text)
    assert not any("callback" in c.lower() or "python" in c.lower() for c in calls), calls
    assert "callback" not in text.lower()


def test_export_of_jit_hessian_round_trips():
    x = jnp.linspace(-1.0, 1.0, 4)
    exp = export.export(jax.jit(jax.hessian(jaxworld.wrap(f))))(
        jax.ShapeDtypeStruct(x.shape, x.dtype))
    text = exp.mlir_module()
    _no_host_callbacks(text)
    blob = exp.serialize()
    restored = export.deserialize(blob)
    assert_trees_close(restored.call(x), jax.hessian(f)(x))
    assert_trees_close(restored.call(2.0 * x), jax.hessian(f)(2.0 * x))


def test_export_of_prepared_operator_and_grad_of_hvp(enable_x64):
    x = jnp.linspace(-0.5, 0.7, 3)
    v = jnp.array([1.0, -2.0, 0.5])
    hv = jaxworld.hvp(f)
    avals = [jax.ShapeDtypeStruct(x.shape, x.dtype)] * 2
    exp = export.export(jax.jit(lambda x, v: hv(x, v)))(*avals)
    _no_host_callbacks(exp.mlir_module())
    restored = export.deserialize(exp.serialize())
    assert_trees_close(restored.call(x, v), jax.jvp(jax.grad(f), (x,), (v,))[1])


def test_export_keeps_the_world_it_was_made_in():
    """An exported artifact is a snapshot: a later redefinition + advance does not change it,
    while the wrapped function itself follows the new world."""
    ns = {"jnp": jnp}
    exec("def g(x):\n    return jnp.sin(x)\n\ndef h(x):\n    return jnp.sum(g(x) ** 2)\n", ns)
    wh = jaxworld.wrap(ns["h"])
    x = jnp.array([0.1, 0.2, 0.3])
    blob = export.export(jax.jit(jax.hessian(wh)))(
        jax.ShapeDtypeStruct(x.shape, x.dtype)).serialize()
    old = jax.hessian(lambda x: jnp.sum(jnp.sin(x) ** 2))(x)
    exec("def g(x):\n    return jnp.cos(x) * 3.0\n", ns)
    jaxworld.advance()
    assert_trees_close(export.deserialize(blob).call(x), old)
    new = lambda x: jnp.sum((jnp.cos(x) * 3.0) ** 2)  # noqa: E731
    assert_trees_close(jax.hessian(wh)(x), jax.hessian(new)(x))
