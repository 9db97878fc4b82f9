"""Group `scoped` (13, 14, 15): scoped invalidation on the drop-in path (issue #13).

A wrapped Hessian under plain `jax.jit(jax.hessian(wrap(f)))`, and K = 10 unrelated
`jax.jit(jax.value_and_grad(step))` functions that never touch jaxworld, in one process:

- 13 "blast radius": the first call of each unrelated function after a relevant change (its
  helper redefined, then `advance()`) against its first call after the same pause (and, in the
  detail, its steady call); "blast radius, vs plain eviction": the same against its first call
  after plain JAX evicts one Hessian executable (what plain JAX must do to answer the new world);
- 14 "relevant change, drop-in": redefine, advance and call the wrapped Hessian, against the
  first call of a fresh plain `jax.jit(jax.hessian(f))`;
- 15 "memory, drop-in": resident memory over `cfg.cycles` relevant advances of that Hessian.
"""

from __future__ import annotations

import gc
import statistics

import jax
import jax.numpy as jnp

from ._common import (
    Config,
    Row,
    _batch,
    _block,
    _busy,
    _interleaved,
    _namespace,
    _new_constant,
    _perf,
    _point,
    _redefine_helper,
    _row,
    _timed,
)
from ._memory import rss_mb

K_UNRELATED = 10


def _unrelated(n: int):
    fns = [jax.jit(jax.value_and_grad(lambda y, s=float(i + 2): jnp.sum(jnp.sin(y * s) ** 2)))
           for i in range(K_UNRELATED)]
    x = _point(n)
    for fn in fns:
        _block(fn(x))
    return fns, x


def _all_once(fns, x) -> float:
    """Seconds for one call of each function (blocked at the end)."""
    t = _perf()
    outs = [fn(x) for fn in fns]
    _block(outs)
    return _perf() - t


def bench_scoped(name: str, n: int, cfg: Config) -> list[Row]:
    import jaxworld

    gc.collect()
    x = _point(n)
    ns = _namespace(name, n)
    hessian = jax.jit(jax.hessian(jaxworld.wrap(ns["loss"])))
    _block(hessian(x))
    fns, xu = _unrelated(n)
    before = dict(jaxworld.stats())

    # 13: blast radius: the unrelated functions' first calls after the change and advance
    # (then, untimed, the dependent re-compiles). The baseline is their first call after a pause
    # as long as that advance, spent in plain Python: on a CPU any pause makes the next calls
    # slower for a while (caches, XLA's worker threads), with or without jaxworld. The ratio to
    # their steady call, and what a fresh plain compile does to them, are in the detail.
    advance_s, steady, recompile, control = [], [], [], []

    # Garbage collection is off while each side runs (a collection that the advance's
    # allocations happen to trigger would cool the caches for the next calls just the same as
    # any other Python work would; that is not what this row measures).
    def after_change():
        _redefine_helper(ns, name, _new_constant())
        gc.collect()
        gc.disable()
        try:
            t = _perf()
            jaxworld.advance()
            advance_s.append(_perf() - t)
            first = _all_once(fns, xu)
        finally:
            gc.enable()
        _block(hessian(x))  # the dependent re-traces and re-compiles once
        recompile.append(_all_once(fns, xu))
        _all_once(fns, xu)
        return first

    def after_pause():
        _all_once(fns, xu)
        steady.append(_all_once(fns, xu))
        gc.collect()
        gc.disable()
        try:
            _busy(advance_s[-1] if advance_s else 0.002)
            first = _all_once(fns, xu)
        finally:
            gc.enable()
        fresh = _namespace(name, n, _new_constant())
        _block(jax.jit(jax.hessian(fresh["loss"]))(x))
        control.append(_all_once(fns, xu))
        _all_once(fns, xu)
        return first

    # The same, in plain JAX: to answer the new world, plain JAX must drop the old Hessian's
    # executable too (`clear_cache`, or a fresh `jax.jit` whose old one is freed). Freeing an XLA
    # executable slows the next first calls of every other `jax.jit` in the process by itself
    # (measured: about 2x a pause alone, 10 functions on a 2-core CPU), with no re-trace and no
    # re-compile: the first-call cost of any correct answer, not of jaxworld.

    def after_plain_eviction():
        fresh = _namespace(name, n, _new_constant())
        plain_hessian = jax.jit(jax.hessian(fresh["loss"]))
        _block(plain_hessian(x))
        _all_once(fns, xu)
        _all_once(fns, xu)
        gc.collect()
        gc.disable()
        try:
            _busy(advance_s[-1] if advance_s else 0.002)
            plain_hessian.clear_cache()
            first = _all_once(fns, xu)
        finally:
            gc.enable()
        _all_once(fns, xu)
        return first

    reps = max(cfg.compile_reps, 3) * 3
    pairs, plain_pairs = [], []
    sides = (after_change, after_pause, after_plain_eviction)
    for i in range(reps):  # the three interleaved, each in each position in turn
        times = {}
        for side in sides[i % 3:] + sides[:i % 3]:
            times[side] = side()
        pairs.append((times[after_change], times[after_pause]))
        plain_pairs.append((times[after_change], times[after_plain_eviction]))
    after = jaxworld.stats()
    steady_s = statistics.median(steady)
    ours_s = statistics.median(a for a, _ in pairs)
    rows = [_row("blast radius", name, n, pairs,
                 baseline_is=(f"first call of {K_UNRELATED} unrelated jax.jit functions after "
                              "the same pause in plain Python"),
                 detail={"unrelated": K_UNRELATED,
                         "advance_s": statistics.median(advance_s),
                         "steady_s": steady_s,
                         "ratio_to_steady": ours_s / steady_s,
                         "after_the_dependent_recompiled_ratio_to_steady":
                             statistics.median(recompile) / steady_s,
                         "plain_after_a_fresh_hessian_compile_ratio_to_steady":
                             statistics.median(control) / steady_s,
                         "scoped_invalidations": (after["scoped_invalidations"]
                                                  - before["scoped_invalidations"]),
                         "global_invalidations": (after["global_invalidations"]
                                                  - before["global_invalidations"])})]
    rows.append(_row("blast radius, vs plain eviction", name, n, plain_pairs,
                     baseline_is=(f"first call of {K_UNRELATED} unrelated jax.jit functions after "
                                  "the same pause and plain JAX's clear_cache() of one Hessian"),
                     detail={"unrelated": K_UNRELATED,
                             "plain_eviction_ratio_to_steady":
                                 statistics.median(b for _, b in plain_pairs) / steady_s}))

    # 14: relevant change on the drop-in path, vs plain JAX compiling afresh.
    def ours():
        _redefine_helper(ns, name, _new_constant())
        return _timed(lambda: (jaxworld.advance(), hessian(x))[1])

    def plain():
        fresh = _namespace(name, n, _new_constant())
        return _timed(lambda: jax.jit(jax.hessian(fresh["loss"]))(x))

    if cfg.warmup:
        ours(), plain()
    before = dict(jaxworld.stats())
    pairs = _interleaved(ours, plain, max(cfg.compile_reps, 3) * 3)
    after = jaxworld.stats()
    rows.append(_row("relevant change, drop-in", name, n, pairs,
                     baseline_is="first call of a fresh jax.jit(jax.hessian(f))",
                     detail={"global_invalidations": (after["global_invalidations"]
                                                      - before["global_invalidations"])}))
    return rows


def bench_scoped_memory(cfg: Config, name: str = "rosenbrock", n: int = 3) -> list[Row]:
    """15: resident memory over relevant advances of a drop-in `jax.jit(jax.hessian(wrap(f)))`."""
    import jaxworld

    x = _point(n)
    ns = _namespace(name, n)
    hessian = jax.jit(jax.hessian(jaxworld.wrap(ns["loss"])))

    def cycle():
        _redefine_helper(ns, name, _new_constant())
        jaxworld.advance()
        _block(hessian(x))

    for _ in range(min(10, cfg.cycles)):
        cycle()
    gc.collect()
    start, before = rss_mb(), dict(jaxworld.stats())
    t = _perf()
    for _ in range(cfg.cycles):
        cycle()
    elapsed = _perf() - t
    gc.collect()
    growth = rss_mb() - start
    after = jaxworld.stats()
    row = _row("memory, drop-in", name, n, (growth, 0.0),
               baseline_is="no growth", unit="MB", value_for_target=growth,
               detail={"cycles": cfg.cycles, "cycle_s": elapsed / cfg.cycles,
                       "global_invalidations": (after["global_invalidations"]
                                                - before["global_invalidations"]),
                       "steady_call_s": _batch(hessian, (x,), 10)})
    row.ratio = None
    return [row]


PER_FUNCTION = False


def steps(cfg: Config):
    for name in ("mlp", "rosenbrock"):
        for n in cfg.sizes:
            yield f"{name} n={n}: scoped invalidation", bench_scoped, (name, n, cfg)
    yield f"memory over {cfg.cycles} drop-in relevant advances", bench_scoped_memory, (cfg,)
