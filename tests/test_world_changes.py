"""The change matrix (issue #3), run from where it is written once: the world-change rows of
`jaxworld.testing`'s built-in suite (`jaxworld/testing/_builtin.py`), through
`jaxworld.testing.parametrize`.

Each row changes the code between preparing an operator and calling it again after
`jaxworld.advance()`; `jaxworld.testing` checks the new answer against plain JAX traced fresh in
the new world (and float64 finite differences), that the change really changes the answer (so a
stale answer cannot pass), that the operator re-traced (or, for the "nothing" rows, did not), and
that a second call agrees. Every row runs through both stacks: jaxworld's prepared operator
(``jaxworld.hessian(f)``, ...) and plain JAX on a wrapped function
(``jax.jit(jax.hessian(jaxworld.wrap(f)))`` and the like): the one the shipped row names, then
the other.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import jaxworld
from jaxworld.testing import World, assert_passes, builtin_suite, parametrize

from .helpers import assert_trees_close

X = np.array([0.3, -0.7, 1.1], dtype=np.float32)

_VIA_NAMES = {"operator": "jaxworld's operator", "wrap": "plain JAX on wrap(f), jitted"}


def world_rows_through_both_stacks() -> list:
    """Every shipped world-change row as written, and again through the other stack."""
    out = []
    for row in builtin_suite():
        if row.kind != "world":
            continue
        other = "wrap" if row.via == "operator" else "operator"
        out += [row, dataclasses.replace(row, via=other,
                                         name=f"{row.name} [via {_VIA_NAMES[other]}]")]
    return out


@parametrize(world_rows_through_both_stacks)
def test_world_change_row(scenario):
    assert_passes(scenario)


def test_every_row_runs_through_both_stacks():
    rows = world_rows_through_both_stacks()
    shipped = [r for r in builtin_suite() if r.kind == "world"]
    assert len(rows) == 2 * len(shipped) >= 40
    for row in shipped:
        assert {r.via for r in rows if r.setup is row.setup and r.change is row.change} == {
            "operator", "wrap"}, row.name


def test_plain_jax_pullback_and_linearization_made_before_a_change_stay_in_their_world():
    """A plain `jax.vjp` pullback / `jax.linearize` function holds residuals of the world it was
    made in; called after a change and an advance it must give that world's answer, never the new
    world's closure applied to the old residuals (an answer of no world)."""
    world = World("pullback")
    ns = world.namespace
    world.define("""
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
    world.define("""
        def g(x):
            return 3.0 * jnp.exp(x)
    """)
    jaxworld.advance()
    new_grad = jax.jit(jax.grad(lambda y: ns["f"](y)))(x)
    assert not np.allclose(old_grad, new_grad)
    assert_trees_close(pullback(jnp.float32(1.0))[0], old_grad)
    assert_trees_close(linearized(v), old_jvp)
    assert_trees_close(jax.grad(wrapped)(x), new_grad)  # a new computation: the new world
    world.close()
