"""Costs of issue #12's consistency checks: `python docs/worlds_costs.py`.

1. `sync()` alone — the check made before every trace jaxworld makes, at the start of every
   notebook cell and after every world-changing top-level statement — with N live Hessians (each
   a prepared `jaxworld.hessian` of its own function), nothing changed: medians of interleaved
   runs, side by side with a no-op `jaxworld.advance()` (the candidate of the issue).
2. An IPython cell of 20 assignment statements, with the per-statement check on and off
   (interleaved runs in one shell), per statement.
3. A trace: `jax.jit(jax.hessian(wf))` traced fresh (new lambda), jaxworld vs plain JAX.
"""

from __future__ import annotations

import statistics
import sys
import time

import jax
import jax.numpy as jnp

import jaxworld
from jaxworld import _epoch

X = jnp.linspace(0.1, 1.0, 8)


def _median_us(fn, reps=200, rounds=7):
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        out.append((time.perf_counter() - t) / reps * 1e6)
    return statistics.median(out)


def live(n):
    keep = []
    for i in range(n):
        ns = {"jnp": jnp, "k": float(i)}
        exec("def g(x):\n    return jnp.sin(x) + k\ndef f(x):\n    return jnp.sum(g(x) ** 2)\n", ns)
        H = jaxworld.hessian(ns["f"])
        H(X)
        keep.append((ns, H))
    return keep


def main():
    print(f"jax {jax.__version__}, python {sys.version.split()[0]}")
    total = []
    for n in (1, 10, 100):
        total += live(n - len(total))
        rows = {"sync": [], "advance": []}
        for _ in range(5):  # interleaved
            rows["sync"].append(_median_us(_epoch.sync))
            rows["advance"].append(_median_us(jaxworld.advance, reps=50))
        print(f"{n:4d} live Hessians: sync() {statistics.median(rows['sync']):8.1f} us, "
              f"no-op advance() {statistics.median(rows['advance']):8.1f} us")

    try:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
    except ImportError:
        print("IPython not installed: cell timing skipped")
    else:
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        jaxworld.load_ipython_extension(shell)
        cell = "".join(f"v{i} = {i}\n" for i in range(20))
        on, off = [], []
        for _ in range(15):
            for enabled, into in ((True, on), (False, off)):
                jaxworld.load_ipython_extension(shell, per_statement=enabled)
                t = time.perf_counter()
                shell.run_cell(cell, store_history=False)
                into.append((time.perf_counter() - t) * 1e6)
        d = (statistics.median(on) - statistics.median(off)) / 20
        print(f"IPython cell of 20 assignments with {len(total)} live Hessians: "
              f"{statistics.median(on):.0f} us with the per-statement check, "
              f"{statistics.median(off):.0f} us without: {d:.1f} us per statement")

    wf = jaxworld.wrap(total[0][0]["f"])
    plain = total[0][0]["f"]
    tj, tp = [], []
    for _ in range(7):
        t = time.perf_counter()
        jax.jit(jax.hessian(lambda x: wf(x))).lower(X)
        tj.append(time.perf_counter() - t)
        t = time.perf_counter()
        jax.jit(jax.hessian(lambda x: plain(x))).lower(X)
        tp.append(time.perf_counter() - t)
    print(f"tracing jax.jit(jax.hessian(.)) fresh with {len(total)} live Hessians: jaxworld "
          f"{statistics.median(tj) * 1e3:.2f} ms, plain JAX {statistics.median(tp) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
