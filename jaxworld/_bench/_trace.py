"""Group `trace` (6): the first trace of `jax.hessian` of a function calling a helper in 20 places.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._common import Config, Row, _interleaved, _new_constant, _point, _row, _timed

_HELPER_20 = (
    "def helper(z):\n"
    "    for k in range(8):\n"
    "        z = jnp.tanh(z * 1.1 + 0.1) + jnp.sin(z) * {c}\n"
    "    return z\n"
)
_CALLER_20 = (
    "def F(x):\n"
    "    total = 0.0\n"
    "    for i in range(20):\n"
    "        total = total + jnp.sum(H(x * (1.0 + 0.01 * i)))\n"
    "    return total\n"
)


def bench_trace_call_sites(cfg: Config, n: int = 16) -> list[Row]:
    """6: first trace of `jax.hessian` of a function calling a helper in 20 places."""
    import jaxworld

    x = _point(n)

    def build(wrapped: bool):
        ns: dict[str, Any] = {"jnp": jnp}
        exec(_HELPER_20.format(c=repr(_new_constant())), ns)
        ns["H"] = jaxworld.wrap(ns["helper"]) if wrapped else ns["helper"]
        exec(_CALLER_20, ns)
        return ns["F"]

    def ours():
        F = build(True)
        return _timed(lambda: jax.make_jaxpr(jax.hessian(F))(x))

    def plain():
        F = build(False)
        return _timed(lambda: jax.make_jaxpr(jax.hessian(F))(x))

    if cfg.warmup:
        ours(), plain()
    pairs = _interleaved(ours, plain, cfg.trace_reps)
    return [_row("trace 20 call sites", "helper x20", n, pairs,
                 baseline_is="same function, helper inline")]


PER_FUNCTION = False


def steps(cfg: Config):
    yield "trace of 20 call sites", bench_trace_call_sites, (cfg,)
