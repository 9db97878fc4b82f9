"""Group `capture` (9, 10): a trace with its dependency record vs the bare trace; a no-op
advance with realistic globals live.
"""

from __future__ import annotations

import gc
import itertools
import statistics
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._common import (
    FUNCTIONS,
    Config,
    Row,
    _block,
    _interleaved,
    _namespace,
    _perf,
    _point,
    _redefine_helper,
    _row,
    _timed,
)

_MODEL_SOURCE = (
    "import dataclasses\n"
    "def act(z):\n"
    "    return jnp.tanh(z) * {c}\n"
    "@jax.tree_util.register_dataclass\n"
    "@dataclasses.dataclass\n"
    "class Model:\n"
    "    w: jax.Array\n"
    "    b: jax.Array\n"
    "    def __call__(self, x):\n"
    "        return act(self.w @ x + self.b)\n"
    "def loss(model, x):\n"
    "    return jnp.sum(model(model(x)) ** 2)\n"
)


class _NoRecord:
    """A dependency record of nothing: `_Entry._retrace` with it is a re-trace without a record
    (the same trace, closure and bookkeeping)."""

    verifiable = True

    @classmethod
    def capture(cls, fun: Any, *, roots: tuple = ()) -> _NoRecord:
        return cls()

    def changes(self) -> list:
        return []

    def cover(self, jaxpr: Any, boundary: Any) -> None:
        pass

    def user_callables(self) -> list:
        return []


def bench_capture(name: str, n: int, cfg: Config) -> list[Row]:
    """9: a first trace with its dependency record vs the same trace without one, alone and as
    part of a first `jax.hessian` trace; then the re-trace a change causes, both ways."""
    import jaxworld
    from jaxworld import _wrap
    from jaxworld._deps import DependencyRecord

    x = _point(n)
    if name == "model":  # a model passed as an argument: its class and method are recorded
        ns: dict[str, Any] = {"jnp": jnp, "jax": jax}
        exec(_MODEL_SOURCE.format(c="1.0"), ns)
        args: tuple = (ns["Model"](jnp.eye(n, dtype=jnp.float32), jnp.zeros(n, jnp.float32)), x)
    else:
        ns = _namespace(name, n)
        args = (x,)
    wrapped = jaxworld.wrap(ns["loss"])
    entry, _ = wrapped._lookup(args, {})

    def first_trace():
        # A first trace of the entry: no closure yet, so nothing of an earlier trace is reused
        # (no successor record, no eviction of JAX's caches).
        closure, previous = entry.closure, entry.previous
        entry.closure = entry.previous = None
        try:
            return _timed(lambda: entry._retrace(jaxworld.epoch()).jaxpr)
        finally:
            entry.closure, entry.previous = closure, previous

    def retrace():  # the re-trace a change causes (the old closure is there)
        return _timed(lambda: entry._retrace(jaxworld.epoch()).jaxpr)

    def without_record(trace):  # the same trace with a record that records nothing
        record = entry.record
        _wrap.DependencyRecord, entry.record = _NoRecord, None
        try:
            return trace()
        finally:
            _wrap.DependencyRecord, entry.record = DependencyRecord, record

    def ours():  # capture, trace, re-check, cover: everything `_Entry._retrace` does
        return first_trace()

    def plain():
        return without_record(first_trace)

    ours(), plain()
    reps = max(cfg.trace_reps, 5) * 3
    pairs = _interleaved(ours, plain, reps)
    rows = [_row("trace with dependency record", name, n, pairs,
                 baseline_is="the same first trace without a record",
                 detail={"record_entries": len(entry.record)})]

    # What a user's first trace costs: `jax.hessian` of a fresh `wrap(f)`, traced to a jaxpr (the
    # trace of `f`, its record, and the Hessian's derivations), with the record and without.
    argnum = len(args) - 1  # the model, when there is one, is not differentiated

    def hessian_trace():
        wrapped = jaxworld.wrap(ns["loss"])
        return _timed(lambda: jax.make_jaxpr(jax.hessian(wrapped, argnums=argnum))(*args))

    def hessian_without_record():
        _wrap.DependencyRecord = _NoRecord
        try:
            return hessian_trace()
        finally:
            _wrap.DependencyRecord = DependencyRecord

    def plain_hessian_trace():
        return _timed(lambda: jax.make_jaxpr(jax.hessian(ns["loss"], argnums=argnum))(*args))

    hessian_trace(), hessian_without_record(), plain_hessian_trace()
    pairs = _interleaved(hessian_trace, hessian_without_record, reps)
    plain_pairs = _interleaved(hessian_trace, plain_hessian_trace, reps)
    rows.append(_row("hessian trace with dependency record", name, n, pairs,
                     baseline_is="the same first trace of jax.hessian(wrap(f)) without a record",
                     detail={"plain_jax_hessian_trace_s": statistics.median(
                                 p[1] for p in plain_pairs),
                             "over_plain_jax_hessian_trace": statistics.median(
                                 a / b for a, b in plain_pairs)}))

    # The re-trace a change causes: the helper is redefined and the record checked, as
    # `advance()` does (untimed); then the entry re-traces. That check walked the new world
    # already, so the re-trace reuses its record while its guards hold (`take_successor`).
    constants = itertools.count(2)
    ready = []

    def redefine():
        c = float(next(constants))
        if name == "model":
            exec(f"def act(z):\n    return jnp.tanh(z) * {c!r}\n", ns)
        else:
            _redefine_helper(ns, name, c)
        assert entry.record.changes(), "the redefinition must be a change"

    def ours_after_change():
        redefine()
        ready.append(entry.record._successor is not None)
        return retrace()

    def plain_after_change():
        redefine()
        return without_record(retrace)

    ours_after_change(), plain_after_change()
    ready.clear()
    pairs = _interleaved(ours_after_change, plain_after_change, reps)
    rows.append(_row("re-trace after a change", name, n, pairs,
                     baseline_is="the same re-trace without a record",
                     detail={"record_entries": len(entry.record),
                             "walk_reused": sum(ready) / len(ready)}))
    return rows


_REALISTIC_SOURCE = (
    "import logging\n"
    "logger = logging.getLogger('jaxworld.bench')\n"
    "CONFIG = {{'scale': 0.5, 'name': 'run', 'layers': [4, 4]}}\n"
    "KEYS = jax.random.split(jax.random.PRNGKey(0), 4)\n"
    "ARRAYS = [jnp.ones({n}) * i for i in range(8)]\n"
    "TABLE = np.linspace(0.0, 1.0, {n})\n"
    "def act(z):\n"
    "    return jnp.tanh(z) * CONFIG['scale']\n"
    "def loss(x):\n"
    "    logger.debug('tracing loss')\n"
    "    noise = jax.random.normal(KEYS[0], x.shape)\n"
    "    return jnp.sum(act(x + sum(ARRAYS) * 1e-3 + TABLE) ** 2 + 1e-3 * noise)\n"
)


def bench_noop_realistic(cfg: Config, n: int = 16) -> list[Row]:
    """10: a no-op advance with realistic globals (a logger, a config dict, PRNG keys, a list of
    arrays, a NumPy table) live vs one with the plain MLP Hessian live; neither may re-trace."""
    import jaxworld
    from jaxworld.testing import release_caches

    x = _point(n)

    def live_operator(realistic: bool):
        if realistic:
            ns: dict[str, Any] = {"jnp": jnp, "jax": jax, "np": np}
            exec(_REALISTIC_SOURCE.format(n=n), ns)
        else:
            ns = _namespace("mlp", n)
        op = jaxworld.hessian(ns["loss"])
        _block(op(x))
        return op

    def median_advance(realistic: bool) -> float:
        release_caches()
        gc.collect()
        op = live_operator(realistic)
        before = dict(jaxworld.stats())
        times = []
        for _ in range(max(5, cfg.noop_reps // 10)):
            t = _perf()
            jaxworld.advance()
            times.append(_perf() - t)
        _block(op(x))
        after = jaxworld.stats()
        counts[realistic] += (after["traces"] - before["traces"]
                              + after["compilations"] - before["compilations"])
        return statistics.median(times)

    counts = {True: 0, False: 0}
    pairs = _interleaved(lambda: median_advance(True), lambda: median_advance(False),
                         max(2, cfg.trace_reps))
    return [_row("no-op advance, realistic globals", "logger+config+keys+arrays", n, pairs,
                 baseline_is="no-op advance with the mlp Hessian live",
                 detail={"traces_and_compilations_after_advances": counts[True],
                         "baseline_traces_and_compilations": counts[False]})]


PER_FUNCTION = False


def steps(cfg: Config):
    for name in FUNCTIONS + ("model",):
        for n in cfg.sizes:
            yield f"{name} n={n}: trace with record", bench_capture, (name, n, cfg)
    yield "no-op advance, realistic globals", bench_noop_realistic, (cfg,)
