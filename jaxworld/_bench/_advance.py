"""Group `advance` (3, 4): the first call after a no-op advance; after a relevant change.
"""

from __future__ import annotations

import functools
import gc
import itertools
import statistics

import jax
import numpy as np

from ._common import (
    _SOURCES,
    Config,
    Row,
    _batch,
    _block,
    _busy,
    _helper_names,
    _namespace,
    _new_constant,
    _perf,
    _point,
    _redefine_helper,
    _row,
    _timed,
)


def bench_advance(name: str, n: int, cfg: Config) -> list[Row]:
    """3 and 4: first call after a no-op advance; after a relevant change and advance."""
    import jaxworld
    from jaxworld.testing import release_caches, release_period

    rows = []
    # Start from what this row's own function makes live: release what earlier rows left in
    # JAX's caches (their wrapped functions would otherwise be validated by every advance here).
    release_caches()
    gc.collect()
    x = _point(n)
    ns = _namespace(name, n)
    hessian = jaxworld.hessian(ns["loss"])
    for _ in range(3):
        _block(hessian(x))

    # 3: no-op advance. The call after it must be a plain jit dispatch: no trace, no compile.
    before = dict(jaxworld.stats())
    pairs, advance_times, control = [], [], []
    for _ in range(cfg.noop_reps):
        t = _perf()
        jaxworld.advance()
        advance_times.append(_perf() - t)
        first = _batch(hessian, (x,), 1)
        steady = _batch(hessian, (x,), 1)
        pairs.append((first, steady))
        # Control: the first call after a pause as long as the advance, spent in plain Python
        # (no jaxworld): caches and XLA's worker threads cool down the same way.
        _busy(advance_times[-1])
        control.append(_batch(hessian, (x,), 1) / steady)
    after = jaxworld.stats()
    rows.append(_row("no-op advance", name, n, pairs,
                     baseline_is="steady call of the same operator",
                     detail={"advance_s": statistics.median(advance_times),
                             "control_ratio_after_same_pause": statistics.median(control),
                             "traces": after["traces"] - before["traces"],
                             "derivations": after["derivations"] - before["derivations"]}))

    # 4: relevant change: redefine the helper, advance, call; vs plain JAX compiling afresh.
    helper = _helper_names[name]

    def ours():
        _redefine_helper(ns, name, _new_constant())
        return _timed(lambda: (jaxworld.advance(), hessian(x))[1])

    def plain():
        fresh = _namespace(name, n, _new_constant())
        return _timed(lambda: jax.jit(jax.hessian(fresh["loss"]))(x))

    def plain_invalidated():
        # What a relevant advance does to JAX's caches (a new user-context value: every jit cache
        # key changes, JAX's own jitted helpers inside jnp re-trace too), then plain JAX afresh.
        fresh = _namespace(name, n, _new_constant())
        _invalidation_context().set_global(next(_invalidations))
        return _timed(lambda: jax.jit(jax.hessian(fresh["loss"]))(x))

    if cfg.warmup:
        ours(), plain(), plain_invalidated()
    # Dead generations are released every `release_period()` relevant advances: the full
    # run covers whole release periods, and reports the mean as well as the median.
    reps = 2 * release_period() if cfg.warmup else cfg.compile_reps
    before = dict(jaxworld.stats())
    triples = []
    for i in range(reps):  # rotate which side goes first
        sides = [ours, plain, plain_invalidated]
        sides = sides[i % 3:] + sides[:i % 3]
        times = {side: side() for side in sides}
        triples.append((times[ours], times[plain], times[plain_invalidated]))
    pairs = [(a, b) for a, b, _ in triples]
    after = jaxworld.stats()
    # Correctness of what was timed: the prepared Hessian equals plain JAX on the new definition.
    fresh = dict(ns)
    exec(_SOURCES[name][1], fresh)
    want = jax.jit(jax.hessian(fresh["loss"]))(x)
    err = float(np.max(np.abs(np.asarray(hessian(x)) - np.asarray(want))))
    rows.append(_row("relevant change", name, n, pairs,
                     baseline_is="first call of a fresh jax.jit(jax.hessian(f))",
                     detail={"traces": after["traces"] - before["traces"],
                             "changed_helper": helper, "max_abs_error_vs_plain": err,
                             "mean_ratio": (statistics.mean(p[0] for p in pairs)
                                            / statistics.mean(p[1] for p in pairs))}))
    invalidated = [(a, c) for a, _, c in triples]
    rows.append(_row("relevant change, plain invalidated", name, n, invalidated,
                     baseline_is="fresh jax.jit(jax.hessian(f)) after the same cache-key change",
                     detail={"mean_ratio": (statistics.mean(p[0] for p in invalidated)
                                            / statistics.mean(p[1] for p in invalidated)),
                             "plain_invalidated_over_plain": statistics.median(
                                 c / b for _, b, c in triples)}))
    return rows


_invalidations = itertools.count(1)


@functools.cache
def _invalidation_context():
    """A user context of the benchmark's own, made once (`make_user_context` is not thread-safe)."""
    return jax.make_user_context(0)


PER_FUNCTION = True


def steps(cfg: Config, name: str, n: int):
    yield f"{name} n={n}: advance", bench_advance, (name, n, cfg)
