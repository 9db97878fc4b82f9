"""Group `eager` (11): an eager call of a wrapped function vs `jax.jit` of the same function.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp

from ._common import (
    EAGER_LEAVES,
    Config,
    Row,
    _row,
    _steady_pairs,
)


def bench_eager_dispatch(cfg: Config, leaves: Iterable[int] = EAGER_LEAVES) -> list[Row]:
    """11: an eager call of a wrapped function vs `jax.jit` of the same function."""
    import jaxworld

    rows = []
    for n in leaves:
        tree = {f"p{i:03d}": jnp.full((3,), 0.001 * i, jnp.float32) for i in range(n)}
        ns: dict[str, Any] = {"jnp": jnp, "jax": jax}
        exec("def f(tree):\n    return sum(jnp.sum(v * v) for v in "
             "jax.tree_util.tree_leaves(tree))\n", ns)
        ours, plain = jaxworld.wrap(ns["f"]), jax.jit(ns["f"])
        args = (tree,)
        k, pairs = _steady_pairs(ours, plain, args, cfg)
        rows.append(_row("eager dispatch", "sum of squares", n, pairs,
                         baseline_is="jax.jit of the same function",
                         detail={"calls_per_batch": k, "leaves": n}))
    return rows


PER_FUNCTION = False


def steps(cfg: Config):
    yield "eager dispatch, 1/20/200 leaves", bench_eager_dispatch, (cfg,)
