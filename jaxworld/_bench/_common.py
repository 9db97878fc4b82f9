"""What every benchmark group shares: the functions, the timing helpers, `Row` and `Config`."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SIZES = (3, 64, 512)
QUICK_SIZES = (3, 64)

# Targets from issue #6: (comparison, bound) on the ratio; the memory target is in MB.
TARGETS = {
    "steady hessian": ("<=", 1.02),         # 1.10 at n = 3, see `_target`
    "flops grad": ("<=", 1.0),
    "flops hvp": ("<=", 1.0),
    "flops hessian": ("<=", 1.0),
    "no-op advance": ("<=", 1.5),
    "relevant change": ("<=", 1.1),
    "relevant change, plain invalidated": ("<=", 1.1),
    "trace 20 call sites": ("<=", 0.5),
    "memory": ("<", 50.0),
    "trace with dependency record": ("<=", 1.15),
    "re-trace after a change": ("<=", 1.15),
    "hessian trace with dependency record": ("<=", 1.15),
    "eager dispatch": ("<=", 1.5),
    "blast radius": ("<=", 1.1),                  # issue #13
    "blast radius, vs plain eviction": ("<=", 1.1),
    "relevant change, drop-in": ("<=", 1.0),
    "memory, drop-in": ("<", 50.0),
}
EAGER_LEAVES = (1, 20, 200)

_perf = time.perf_counter


# -- the functions ------------------------------------------------------------------------------

_SOURCES = {
    "mlp": (
        "def act(z):\n"
        "    return jnp.tanh(z) * {c}\n",
        "def loss(x):\n"
        "    h = act(W1 @ x + b1)\n"
        "    h = act(W2 @ h + b2)\n"
        "    return jnp.sum((h - y) ** 2) + 1e-3 * jnp.sum(x ** 2)\n",
    ),
    "rosenbrock": (
        "def term(a, b):\n"
        "    return {c} * 100.0 * (b - a ** 2) ** 2 + (1.0 - a) ** 2\n",
        "def loss(x):\n"
        "    return jnp.sum(term(x[:-1], x[1:]))\n",
    ),
}
FUNCTIONS = tuple(_SOURCES)
_helper_names = {"mlp": "act", "rosenbrock": "term"}


def _namespace(name: str, n: int, c: float = 1.0) -> dict:
    """A fresh namespace in which the loss `loss` and its helper are defined (a notebook cell)."""
    ns: dict[str, Any] = {"jnp": jnp}
    if name == "mlp":
        rng = np.random.default_rng(n)
        scale = 1.0 / np.sqrt(n)
        ns.update(W1=jnp.asarray(rng.normal(size=(n, n)) * scale, jnp.float32),
                  W2=jnp.asarray(rng.normal(size=(n, n)) * scale, jnp.float32),
                  b1=jnp.asarray(rng.normal(size=n), jnp.float32),
                  b2=jnp.asarray(rng.normal(size=n), jnp.float32),
                  y=jnp.asarray(rng.normal(size=n), jnp.float32))
    helper, loss = _SOURCES[name]
    exec(helper.format(c=repr(c)) + loss, ns)
    return ns


def _redefine_helper(ns: dict, name: str, c: float) -> None:
    """Redefine the helper in `ns` (a relevant change: a new cell defining it again)."""
    exec(_SOURCES[name][0].format(c=repr(c)), ns)


def _point(n: int):
    return jnp.linspace(0.1, 1.0, n, dtype=jnp.float32)


_constants = itertools.count(1)


def _new_constant() -> float:
    # A value never used before, so every redefinition is a real change of source and value.
    return 1.0 + next(_constants) * 1e-6


# -- plain-JAX counterparts of the prepared operators -------------------------------------------

def _plain_hvp(f: Callable) -> Callable:
    gradient = jax.grad(f)
    return lambda x, v: jax.jvp(gradient, (x,), (v,))[1]


def _plain(kind: str, f: Callable) -> Callable:
    if kind == "grad":
        return jax.jit(jax.grad(f))
    if kind == "hvp":
        return jax.jit(_plain_hvp(f))
    return jax.jit(jax.hessian(f))


def _prepared(kind: str, f: Callable) -> Callable:
    import jaxworld
    return {"grad": jaxworld.grad, "hvp": jaxworld.hvp, "hessian": jaxworld.hessian}[kind](f)


def _args(kind: str, x) -> tuple:
    return (x, jnp.ones_like(x)) if kind == "hvp" else (x,)


# -- timing -------------------------------------------------------------------------------------

def _block(out) -> None:
    jax.block_until_ready(out)


def _batch(fn: Callable, args: tuple, k: int) -> float:
    """Seconds per call over `k` back-to-back calls (blocked once at the end, like timeit)."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t = _perf()
        for _ in range(k):
            out = fn(*args)
        _block(out)
        return (_perf() - t) / k
    finally:
        if gc_was:
            gc.enable()


def _calibrate(fn: Callable, args: tuple, budget: float) -> int:
    """Calls per batch so that one batch takes about `budget` seconds."""
    one = _batch(fn, args, 3)
    return max(1, min(20000, int(budget / max(one, 1e-7))))


def _interleaved(a: Callable[[], float], b: Callable[[], float], reps: int):
    """`reps` pairs (a_time, b_time), alternating which side runs first."""
    pairs = []
    for i in range(reps):
        if i % 2:
            tb = b()
            ta = a()
        else:
            ta = a()
            tb = b()
        pairs.append((ta, tb))
    return pairs


def _steady_pairs(ours: Callable, plain: Callable, args: tuple, cfg: Config):
    """(calls per batch, pairs): both sides warmed up, then batches of back-to-back calls timed
    in interleaved A/B repetitions (the batch size calibrated on plain JAX)."""
    for _ in range(3):  # warm-up: compile, then settle the dispatch caches
        _block(ours(*args))
        _block(plain(*args))
    k = _calibrate(plain, args, cfg.batch_budget)
    return k, _interleaved(lambda: _batch(ours, args, k), lambda: _batch(plain, args, k),
                           cfg.steady_reps)


def _busy(seconds: float) -> None:
    """Spend `seconds` in plain Python work that touches fresh objects (a pause of the CPU)."""
    end = _perf() + seconds
    junk = []
    while _perf() < end:
        junk.append({"k": len(junk)})


def _timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t = _perf()
        _block(fn())
        return _perf() - t
    finally:
        if gc_was:
            gc.enable()


# -- results ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Row:
    benchmark: str
    function: str
    n: int | None
    jaxworld: float        # seconds, FLOPs or MB (see unit)
    baseline: float
    baseline_is: str
    unit: str
    ratio: float | None    # jaxworld / baseline (median of per-repetition ratios when timed)
    target: str | None
    met: bool | None
    reps: int
    detail: dict = dataclasses.field(default_factory=dict)


def _target(benchmark: str, n: int | None) -> tuple[str, float] | None:
    if benchmark == "steady hessian" and n is not None and n < 64:
        return ("<=", 1.10)
    return TARGETS.get(benchmark)


def _row(benchmark, function, n, pairs_or_values, *, baseline_is, unit="s", detail=None,
         value_for_target=None) -> Row:
    if isinstance(pairs_or_values, tuple):  # (jaxworld, baseline) single deterministic values
        a, b = pairs_or_values
        ratio = a / b if b else None
        reps = 1
    else:
        pairs = pairs_or_values
        a = statistics.median(p[0] for p in pairs)
        b = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[0] / p[1] for p in pairs)
        reps = len(pairs)
    target = _target(benchmark, n)
    met = None
    if target is not None:
        op, bound = target
        value = ratio if value_for_target is None else value_for_target
        if value is not None:
            met = value <= bound if op == "<=" else value < bound
    return Row(benchmark, function, n, a, b, baseline_is, unit, ratio,
               None if target is None else f"{target[0]} {target[1]:g}", met, reps,
               detail or {})


# -- the benchmarks -----------------------------------------------------------------------------

@dataclasses.dataclass
class Config:
    sizes: tuple[int, ...]
    steady_reps: int
    batch_budget: float
    compile_reps: int
    noop_reps: int
    cycles: int
    memory_baseline_cycles: int
    trace_reps: int
    warmup: bool
    only: tuple[str, ...] = ()
    quick: bool = False

    @classmethod
    def make(cls, quick: bool, sizes: Iterable[int] | None = None, cycles: int | None = None,
             repeats: int | None = None) -> Config:
        if quick:
            cfg = cls(QUICK_SIZES, 5, 0.004, 1, 20, 20, 5, 1, False)
        else:
            cfg = cls(SIZES, 21, 0.03, 7, 200, 1000, 200, 7, True)
        cfg.quick = quick
        if sizes is not None:
            cfg.sizes = tuple(sizes)
        if cycles is not None:
            cfg.cycles = cycles
            cfg.memory_baseline_cycles = min(cfg.memory_baseline_cycles, cycles)
        if repeats is not None:
            cfg.steady_reps = cfg.compile_reps = cfg.trace_reps = repeats
            cfg.noop_reps = 10 * repeats
        return cfg


