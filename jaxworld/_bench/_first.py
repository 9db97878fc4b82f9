"""Group `first` (2): trace + compile of a prepared Hessian vs plain `jax.jit(jax.hessian(f))`.
"""

from __future__ import annotations

import jax

from ._common import Config, Row, _interleaved, _namespace, _new_constant, _point, _row, _timed


def bench_first_call(name: str, n: int, cfg: Config) -> list[Row]:
    """2: trace + compile of a prepared Hessian vs plain `jax.jit(jax.hessian(f))`."""
    import jaxworld

    x = _point(n)

    def ours():
        ns = _namespace(name, n, _new_constant())
        return _timed(lambda: jaxworld.hessian(ns["loss"])(x))

    def plain():
        ns = _namespace(name, n, _new_constant())
        return _timed(lambda: jax.jit(jax.hessian(ns["loss"]))(x))

    if cfg.warmup:  # first use of this function's primitives' lowerings, ...
        ours(), plain()
    pairs = _interleaved(ours, plain, cfg.compile_reps)
    return [_row("first call hessian", name, n, pairs,
                 baseline_is="first call of jax.jit(jax.hessian(f))")]


PER_FUNCTION = True


def steps(cfg: Config, name: str, n: int):
    yield f"{name} n={n}: first call", bench_first_call, (name, n, cfg)
