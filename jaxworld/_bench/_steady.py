"""Group `steady` (1, 5, 8): steady-state prepared operators vs `jax.jit`, their compiled FLOPs,
and re-creating the jit on every call.
"""

from __future__ import annotations

import jax

from ._common import (
    Config,
    Row,
    _args,
    _batch,
    _interleaved,
    _namespace,
    _plain,
    _point,
    _prepared,
    _row,
    _steady_pairs,
    _timed,
)


def bench_steady(name: str, n: int, cfg: Config) -> list[Row]:
    """1 and 8: steady-state prepared operators vs `jax.jit`; vs re-creating the jit per call."""
    rows, flops = [], []
    ns = _namespace(name, n)
    x = _point(n)
    for kind in ("grad", "hvp", "hessian"):
        ours, plain = _prepared(kind, ns["loss"]), _plain(kind, ns["loss"])
        args = _args(kind, x)
        k, pairs = _steady_pairs(ours, plain, args, cfg)
        rows.append(_row(f"steady {kind}", name, n, pairs, baseline_is="jax.jit of plain",
                         detail={"calls_per_batch": k}))
        # 5: the compiled FLOPs of the very computations timed above (jaxworld's operators are
        # `jax.jit` of the transformation of `jaxworld.wrap(f)`).
        flops.append(_row(f"flops {kind}", name, n, (_flops(ours, args), _flops(plain, args)),
                          baseline_is="plain", unit="flops"))
        if kind == "hessian":
            # 8: correct but slow: a fresh jax.jit(jax.hessian(f)) on every call.
            reps = cfg.compile_reps
            pairs = _interleaved(
                lambda ours=ours, args=args, k=k: _batch(ours, args, k),
                lambda: _timed(lambda: jax.jit(jax.hessian(ns["loss"]))(x)), reps)
            rows.append(_row("re-jit every call", name, n, pairs,
                             baseline_is="jax.jit(jax.hessian(f)) re-created per call"))
    return rows + flops


def _flops(jitted, args: tuple) -> float:
    analysis = jitted.lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per device
        analysis = analysis[0]
    return float(analysis["flops"])


PER_FUNCTION = True


def steps(cfg: Config, name: str, n: int):
    yield f"{name} n={n}: steady state, FLOPs", bench_steady, (name, n, cfg)
