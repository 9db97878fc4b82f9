"""Group `memory` (7): resident memory over redefine-advance-call cycles (should stay flat).
"""

from __future__ import annotations

import gc
import sys

import jax

from ._common import (
    Config,
    Row,
    _block,
    _namespace,
    _new_constant,
    _perf,
    _point,
    _redefine_helper,
    _row,
)


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource  # no /proc: peak RSS is the best portable figure (KiB on Linux, B on macOS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def bench_memory(cfg: Config, name: str = "rosenbrock", n: int = 3) -> list[Row]:
    """7: resident memory over redefine-advance-call cycles (should stay flat)."""
    import jaxworld

    x = _point(n)
    ns = _namespace(name, n)
    hessian = jaxworld.hessian(ns["loss"])

    def cycle_ours():
        _redefine_helper(ns, name, _new_constant())
        jaxworld.advance()
        _block(hessian(x))

    plain_ns = _namespace(name, n)

    def cycle_plain():
        _redefine_helper(plain_ns, name, _new_constant())
        _block(jax.jit(jax.hessian(plain_ns["loss"]))(x))

    def growth(cycle, count):
        warmup = min(10, max(1, count // 10))
        for _ in range(warmup):
            cycle()
        gc.collect()
        start = rss_mb()
        t = _perf()
        for _ in range(count):
            cycle()
        elapsed = _perf() - t
        gc.collect()
        return rss_mb() - start, elapsed / count

    ours, ours_cycle_s = growth(cycle_ours, cfg.cycles)
    plain, plain_cycle_s = growth(cycle_plain, cfg.memory_baseline_cycles)
    row = _row("memory", name, n, (ours, plain),
               baseline_is=f"plain re-jit, {cfg.memory_baseline_cycles} cycles", unit="MB",
               value_for_target=ours,
               detail={"cycles": cfg.cycles, "cycle_s": ours_cycle_s,
                       "plain_cycles": cfg.memory_baseline_cycles, "plain_cycle_s": plain_cycle_s})
    row.ratio = None  # an absolute target: a ratio of two near-zero growths means nothing
    return [row]


PER_FUNCTION = False


def steps(cfg: Config):
    yield f"memory over {cfg.cycles} cycles", bench_memory, (cfg,)
