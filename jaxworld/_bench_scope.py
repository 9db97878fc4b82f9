"""Benchmark rows of issue #13 (scoped invalidation), in the shape of `jaxworld._bench`'s groups.

Each ``bench_*`` function takes a `jaxworld._bench.Config` and returns a list of
`jaxworld._bench.Row`; `run(cfg, log=...)` runs them all, like `_bench.run`. Hook them into
``jaxworld bench`` by calling `run` from `_bench.run` under a group name (``"scope"``) and adding
`TARGETS` to `_bench.TARGETS`. Standalone: ``python -m jaxworld._bench_scope [--quick]``.

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

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from ._bench import Config, Row, format_table

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


def run(cfg: Config, *, log: Callable[[str], None] = lambda s: None,
        sizes_mb: Iterable[int] = DATA_MB) -> list[Row]:
    """Every row of this module under `cfg`; `log` receives progress lines."""
    t = _perf()
    rows = bench_noop_numpy(cfg, sizes_mb)
    log(f"  no-op advance against NumPy data read ({_perf() - t:.1f} s)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxworld._bench_scope")
    parser.add_argument("--quick", action="store_true", help="1 MB and 100 MB only, 3 reps")
    args = parser.parse_args(argv)
    cfg = Config.make(args.quick)
    rows = run(cfg, log=lambda s: print(s, file=sys.stderr, flush=True),
               sizes_mb=QUICK_DATA_MB if args.quick else DATA_MB)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
