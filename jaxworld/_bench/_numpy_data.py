"""12: no-op advances against NumPy data (issue #13): ``jaxworld bench --only numpy``.

Rows:

- ``no-op advance against NumPy data read``: a no-op `jaxworld.advance()` while a prepared
  `jaxworld.hessian` of a function reading a global NumPy matrix of 1 MB, 100 MB and 1 GB is
  live, by default (``function`` = ``default``) and with `jaxworld.freeze_captured_arrays()`
  (``frozen``), interleaved with a steady call of plain ``jax.jit(jax.hessian(f))`` of the same
  function (the baseline: for scale). The target is on the advance itself: at most 1 ms.

Not here (not built in this branch; see the report of issue #13): "blast radius", "relevant
change" under scoped eviction, and memory over 1,000 relevant advances.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from ._common import Config, Row

TARGETS = {"no-op advance against NumPy data read": ("<=", 1e-3)}  # seconds, absolute
DATA_MB = (1, 100, 1000)
QUICK_DATA_MB = (1, 100)

_perf = time.perf_counter

_SOURCE = (
    "DATA = np.random.default_rng(0).standard_normal(({rows}, 1024))\n"
    "def loss(x):\n"
    "    w = jnp.asarray(DATA[:{n}, 0], dtype=x.dtype)\n"
    "    return jnp.sum(w * jnp.tanh(x) ** 2)\n"
)


def _row(benchmark: str, function: str, n: int, pairs: list[tuple[float, float]], *,
         baseline_is: str, detail: dict) -> Row:
    a = statistics.median(p[0] for p in pairs)
    b = statistics.median(p[1] for p in pairs)
    op, bound = TARGETS[benchmark]
    return Row(benchmark, function, n, a, b, baseline_is, "s",
               statistics.median(p[0] / p[1] for p in pairs), f"{op} {bound:g} s (absolute)",
               a <= bound, len(pairs), detail)


def bench_noop_numpy(cfg: Config, sizes_mb: Iterable[int] = DATA_MB, n: int = 8) -> list[Row]:
    """No-op advances with a Hessian of a function reading a global NumPy matrix (issue #13)."""
    import jaxworld

    x = jnp.linspace(0.1, 1.0, n, dtype=jnp.float32)
    reps = max(3, cfg.trace_reps)
    rows = []
    for mb in sizes_mb:
        for frozen in (False, True):
            previous = jaxworld.freeze_captured_arrays(frozen)
            try:
                ns = {"jnp": jnp, "np": np}
                exec(_SOURCE.format(rows=mb * 128, n=n), ns)  # 1024 float64 per row: 8 KB
                op = jaxworld.hessian(ns["loss"])
                plain = jax.jit(jax.hessian(ns["loss"]))
                jax.block_until_ready(op(x))
                jax.block_until_ready(plain(x))
                jaxworld.advance()  # the first check after the capture may build guards
                before = dict(jaxworld.stats())

                def advance() -> float:
                    t = _perf()
                    jaxworld.advance()
                    return _perf() - t

                def steady(plain: Callable = plain) -> float:
                    t = _perf()
                    jax.block_until_ready(plain(x))
                    return _perf() - t

                pairs = []
                for i in range(reps):
                    first, second = (advance, steady) if i % 2 == 0 else (steady, advance)
                    t1, t2 = first(), second()
                    pairs.append((t1, t2) if first is advance else (t2, t1))
                jax.block_until_ready(op(x))
                after = jaxworld.stats()
                detail = {"data_bytes": int(ns["DATA"].nbytes),
                          "traces_after_advances": after["traces"] - before["traces"],
                          "frozen": bool(not ns["DATA"].flags.writeable)}
                rows.append(_row("no-op advance against NumPy data read",
                                 "frozen" if frozen else "default", mb, pairs,
                                 baseline_is="steady plain jax.jit(jax.hessian(f)) call",
                                 detail=detail))
                del ns, op, plain
                gc.collect()
            finally:
                jaxworld.freeze_captured_arrays(previous)
    return rows


PER_FUNCTION = False


def steps(cfg: Config):
    sizes = QUICK_DATA_MB if cfg.quick else DATA_MB
    yield "no-op advance against NumPy data read", bench_noop_numpy, (cfg, sizes)
