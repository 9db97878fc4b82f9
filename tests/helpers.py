"""Shared test bodies and the one tolerance helper."""

from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import numpy as np

# Tolerances by dtype: float32 results of nested AD differ from plain JAX only by reassociation
# inside XLA, so a few ulps scaled by problem size; float64 much tighter.
_TOLERANCES = {
    np.dtype(np.float16): (1e-2, 1e-2),
    np.dtype(jnp.bfloat16): (1e-2, 1e-2),
    np.dtype(np.float32): (2e-5, 2e-5),
    np.dtype(np.complex64): (2e-5, 2e-5),
    np.dtype(np.float64): (1e-11, 1e-11),
    np.dtype(np.complex128): (1e-11, 1e-11),
}


def tolerance(dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing results of this dtype with the plain-JAX oracle."""
    return _TOLERANCES.get(np.dtype(dtype), (0.0, 0.0))


def assert_trees_close(actual, expected, *, rtol=None, atol=None):
    """Same pytree structure, shapes and dtypes, and values within the dtype's tolerance."""
    a_leaves, a_tree = jax.tree_util.tree_flatten(actual)
    e_leaves, e_tree = jax.tree_util.tree_flatten(expected)
    assert a_tree == e_tree, f"tree structure differs: {a_tree} vs {e_tree}"
    for a, e in zip(a_leaves, e_leaves):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"shape {a.shape} vs {e.shape}"
        assert a.dtype == e.dtype, f"dtype {a.dtype} vs {e.dtype}"
        d_rtol, d_atol = tolerance(a.dtype)
        np.testing.assert_allclose(a, e, rtol=d_rtol if rtol is None else rtol,
                                   atol=d_atol if atol is None else atol)


def notebook(source: str, namespace: dict | None = None) -> dict:
    """Run `source` like a notebook cell in `namespace` (a fresh one by default) and return it."""
    ns = {"jax": jax, "jnp": jnp, "np": np} if namespace is None else namespace
    exec(compile(textwrap.dedent(source), "<cell>", "exec"), ns)
    return ns


def primitive_names(jaxpr) -> list[str]:
    """Names of the top-level primitives of a (closed) jaxpr."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    return [eqn.primitive.name for eqn in jaxpr.eqns]
