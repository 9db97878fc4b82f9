"""Failures while re-tracing in a new world (issue #7, item 4).

A redefined helper that raises, or that changes the output shape, must surface as a clear error
at the call, leave jaxworld consistent (the entry keeps its old closure and record), and the next
correct redefinition + advance must recover. A KeyboardInterrupt during a re-trace must leave no
half-updated closure.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest

import jaxworld

from .helpers import assert_trees_close, notebook

X = jnp.array([0.1, 0.5, -0.3])


def _setup():
    ns = notebook("""
        def g(x):
            return jnp.sin(x)

        def f(x):
            return jnp.sum(g(x) ** 2)
    """)
    wf = jaxworld.wrap(ns["f"])
    H = jaxworld.hessian(wf)
    assert_trees_close(H(X), jax.hessian(lambda x: jnp.sum(jnp.sin(x) ** 2))(X))
    return ns, wf, H


def _entry(wf):
    (entry,) = wf._entries.values()
    return entry


def _recover(ns, wf, H):
    notebook("def g(x):\n    return jnp.cos(x) * 2.0\n", ns)
    jaxworld.advance()
    expected = lambda x: jnp.sum((jnp.cos(x) * 2.0) ** 2)  # noqa: E731
    assert_trees_close(H(X), jax.hessian(expected)(X))
    assert_trees_close(wf(X), expected(X))
    assert_trees_close(jax.jit(jax.grad(wf))(X), jax.grad(expected)(X))


def test_helper_that_raises_surfaces_at_the_call_and_recovers():
    ns, wf, H = _setup()
    entry = _entry(wf)
    old_closure, old_record = entry.closure, entry.record
    notebook("""
        def g(x):
            raise ValueError("bad helper cell")
    """, ns)
    jaxworld.advance()
    for call in (lambda: H(X), lambda: wf(X), lambda: jax.grad(wf)(X)):
        with pytest.raises(ValueError, match=re.escape("bad helper cell")):
            call()
    # Consistent: the entry still holds the old world's closure and record, nothing half-made.
    assert entry.closure is old_closure and entry.record is old_record
    assert not entry.tracing
    _recover(ns, wf, H)


def test_helper_that_changes_shape_is_a_clear_error_and_recovers():
    ns, wf, H = _setup()
    notebook("""
        def g(x):
            return jnp.stack([x, x])  # (3,) -> (2, 3): f's output is still a scalar
    """, ns)
    jaxworld.advance()
    # The new world is self-consistent (f still returns a scalar): plain JAX's answer.
    assert_trees_close(H(X), jax.hessian(lambda x: jnp.sum(jnp.stack([x, x]) ** 2))(X))
    # A helper whose new shape breaks the caller raises JAX's own shape error at the call.
    notebook("""
        def g(x):
            return jnp.ones((2,)) * jnp.sum(x)
    """, ns)
    jaxworld.advance()
    notebook("def f2(x):\n    return jnp.sum(g(x) * x)\n", ns)
    wf2 = jaxworld.wrap(ns["f2"])
    with pytest.raises(TypeError, match=re.escape("mul got incompatible shapes for broadcasting")):
        wf2(X)
    _recover(ns, wf, H)


def test_wrapped_helper_changing_its_output_shape_inside_a_live_trace_keeps_the_old_world():
    ns = notebook("""
        @jaxworld.wrap
        def g(x):
            return jnp.sin(x)
    """, {"jax": jax, "jnp": jnp, "jaxworld": jaxworld})
    g = ns["g"]

    def outer(x):
        a = g(x)
        # Mid-trace: the helper's dependencies change and the world advances (e.g. another
        # thread ran a cell); the second call re-traces to a different shape.
        ns["SCALE"] = 1
        g.__wrapped__.__globals__["jnp"] = _ShapeChangingNumpy()
        jaxworld.advance()
        return a + g(x)

    # Issue #12: the computation stays in the world it started in (both calls get the old
    # trace); before, the second call re-traced to the new shape and raised WorldChangeError.
    assert_trees_close(jax.jit(outer)(X), 2 * jnp.sin(X))
    ns["jnp"] = jnp
    jaxworld.advance()
    assert_trees_close(jax.jit(lambda x: g(x) + g(x))(X), 2 * jnp.sin(X))


class _ShapeChangingNumpy:
    """A stand-in `jnp` whose `sin` returns a different shape (a broken redefinition)."""

    def __getattr__(self, name):
        if name == "sin":
            return lambda x: jnp.stack([jnp.sin(x), jnp.sin(x)])
        return getattr(jnp, name)


def test_keyboard_interrupt_during_retrace_leaves_no_half_updated_closure():
    ns, wf, H = _setup()
    entry = _entry(wf)
    old_closure, old_record, old_nested = entry.closure, entry.record, entry.nested
    notebook("""
        def g(x):
            raise KeyboardInterrupt  # the user pressed Ctrl-C while the re-trace ran
    """, ns)
    jaxworld.advance()
    with pytest.raises(KeyboardInterrupt):
        wf(X)
    assert entry.closure is old_closure
    assert entry.record is old_record and entry.nested == old_nested
    assert not entry.tracing
    assert entry.pending is not None  # still stale: the next call re-traces
    with pytest.raises(KeyboardInterrupt):
        H(X)
    assert entry.closure is old_closure
    before = jaxworld.stats(wf)["traces"]
    _recover(ns, wf, H)
    assert jaxworld.stats(wf)["traces"] == before + 1  # one clean re-trace


def test_keyboard_interrupt_during_derivation_leaves_the_cache_clean(monkeypatch):
    from jaxworld import _closure

    ns, wf, _ = _setup()
    root = _entry(wf).closure
    real = _closure.DERIVERS["vmap"]

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setitem(_closure.DERIVERS, "vmap", interrupted)
    with pytest.raises(KeyboardInterrupt):
        jax.vmap(wf)(jnp.stack([X, X]))
    assert not any(key[0] == "vmap" for key in root._derived)  # nothing half-cached
    monkeypatch.setitem(_closure.DERIVERS, "vmap", real)
    out = jax.vmap(wf)(jnp.stack([X, 2 * X]))
    assert_trees_close(out, jax.vmap(lambda x: jnp.sum(jnp.sin(x) ** 2))(jnp.stack([X, 2 * X])))


def test_error_policy_then_fix_recovers():
    ns, wf, H = _setup()
    notebook("def g(x):\n    return jnp.tanh(x)\n", ns)
    jaxworld.advance()
    with jaxworld.policy("error"):
        with pytest.raises(jaxworld.StaleClosureError,
                           match=re.escape("The stale-closure policy is 'error'")):
            wf(X)
    _recover(ns, wf, H)
