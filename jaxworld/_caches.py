"""Scoped invalidation: which of JAX's caches hold a closure, and evicting exactly those.

When a dependency record changes, the closures traced from it are stale. JAX may hold them in
its caches: the jaxprs of `jax.jit` functions and of control-flow bodies that bound them, and the
executables compiled from those. Before issue #13, `advance()` made all of it unreachable at once
by bumping a JAX user context, which is part of every `jax.jit` cache key, so every `jax.jit` in
the process re-traced and re-compiled. Now a relevant change evicts only the cache entries that
hold a stale closure; every other `jax.jit` stays warm.

How the holders are found (`_compat.staged_into` reads the stack of Python frames):

- **at bind** (`note_use`, from every `world_call` bind under a staging trace): each enclosing
  `pe.trace_to_jaxpr` (the one tracer behind `jax.jit`, `scan` / `cond` / `while_loop` bodies,
  `custom_jvp` / `custom_vjp`, `checkpoint`, `shard_map`, `make_jaxpr`, `eval_shape`), the other
  JAX caches keyed on a callable, and each enclosing `jax.jit` (its trace cache and its C++
  executable cache, both keyed on the jitted callable);
- **at lowering** (`for_lowering`, from the lowering rule): the `jax.jit` whose executable is
  being compiled. This finds a `jax.jit` that embedded another one's cached jaxpr without a bind.

What keeps it never stale where attribution is incomplete:

- A stale closure is never lowered: the lowering rule lowers the current world's closure in its
  place (re-derived from its origin) when the signature is the same, so a cache that handed back
  an old jaxpr (one jaxworld did not see) still compiles the new world. Otherwise it raises
  `WorldChangeError` after invalidating every `jax.jit` (the next call re-traces).
- Falling back to the global bump (counted as ``global_invalidations`` in `jaxworld.stats()`,
  and said by `jaxworld.explain`) when a holder is unknown: a staging trace made outside the
  caches above, an ahead-of-time `jax.jit(...).trace / .lower`, an executable compiled outside
  `jax.jit`, or a trace or compile of a holder still in flight on some thread (its result reaches
  JAX's caches after the eviction).
- The one window left: after `jax.jit`'s Python `cache_miss` returns, its C++ caller inserts the
  executable without running Python code (save finalizers), so the in-flight check sees it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from . import _epoch, _stats
from ._compat import (
    evict_callable,
    evict_jitted,
    evict_traced,
    lowered_by,
    staged_into,
    staging_in_flight,
)
from ._errors import WorldChangeError

_lock = threading.Lock()
_MAX_HOLDERS = 256  # dead holders are pruned past this many (their weak references died)


class Held:
    """The JAX caches that hold closures of one root trace (`_validity.State.held`)."""

    __slots__ = ("traced", "jitted", "unknown")

    def __init__(self):
        # (id(cache), id(fun)) -> (cache, weak fun); id(fun) -> (weak fun, jit info)
        self.traced: dict[tuple[int, int], tuple[object, weakref.ref]] = {}
        self.jitted: dict[int, tuple[weakref.ref, object]] = {}
        self.unknown: str | None = None

    def __len__(self) -> int:
        return len(self.traced) + len(self.jitted)

    def describe(self) -> str:
        """One line for `jaxworld.explain`."""
        names = sorted({_name(ref()) for _, ref in self.traced.values() if ref() is not None}
                       | {_name(ref()) for ref, _ in self.jitted.values() if ref() is not None})
        if self.unknown is not None:
            return ("a change invalidates every jax.jit in the process (global fallback): "
                    + self.unknown)
        if not names:
            return "held by no JAX cache jaxworld knows of"
        shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
        return f"a change evicts only the JAX caches that hold it: {shown}"


def _name(fun) -> str:
    return getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None) or type(
        fun).__name__


def _held(state) -> Held:
    held = state.held
    if held is None:
        held = state.held = Held()
    return held


def _weak(fun) -> weakref.ref | None:
    try:
        return weakref.ref(fun)
    except TypeError:
        return None


def _add(held: Held, traced, jitted, unknown: str | None) -> None:
    for cache, fun in traced:
        ref = _weak(fun)
        if ref is None:
            held.unknown = held.unknown or f"{_name(fun)} is not weak-referenceable"
            continue
        held.traced[id(cache), id(fun)] = (cache, ref)
    for fun, jit_info in jitted:
        ref = _weak(fun)
        if ref is None:
            held.unknown = held.unknown or f"{_name(fun)} is not weak-referenceable"
            continue
        held.jitted[id(fun)] = (ref, jit_info)
    if unknown is not None and held.unknown is None:
        held.unknown = unknown
    if len(held) > _MAX_HOLDERS:
        held.traced = {k: v for k, v in held.traced.items() if v[1]() is not None}
        held.jitted = {k: v for k, v in held.jitted.items() if v[0]() is not None}


def note_use(closure, trace) -> bool:
    """`closure` is being bound under `trace`: remember the caches that will hold it.

    Returns False if an advance has already evicted `closure`'s holders (it is stale, and this
    trace began before that advance): the caller must not stage it where no lowering will look
    (`_wrap._inline`); a `world_call` equation is safe, its lowering compiles the current world.
    Registered under the lock an eviction takes: either this holder is seen by the eviction (in
    flight, which makes it fall back) or the eviction came first, and False is returned.
    """
    state = closure._validity
    if state.traced is None:  # ephemeral: valid in every world
        return True
    staged = staged_into(trace)
    if staged is None:
        return True
    with _lock:
        _add(_held(state), staged.traced, staged.jitted, staged.unknown)
        return not (state.invalidated and not state.frozen)


def for_lowering(closure):
    """The closure to lower in place of `closure`, and what compiles it (the lowering rule).

    Records the `jax.jit` being compiled as a holder. A closure an advance found stale is never
    lowered: the current world's one is (`WorldChangeError` if its signature differs).
    """
    state = closure._validity
    if state.traced is None:
        return closure
    staged = lowered_by()
    with _lock:
        _add(_held(state), staged.traced, staged.jitted, staged.unknown)
        missed = state.invalidated and not state.frozen
    if not missed:
        return closure
    # A JAX cache jaxworld did not know of handed back a trace made before a change (a
    # `jax.jit` that embedded another's cached jaxpr, say). Compile the new world; flush every
    # cache, as the global fallback does, since some holder is unknown.
    _epoch.invalidate_everything("a JAX cache jaxworld did not know of held an old trace of "
                                 f"{closure.name}")
    if _refresh is None:
        raise WorldChangeError(f"jaxworld: {closure.name}: cannot re-derive at lowering")
    return _refresh(closure)


def invalidate(states) -> str | None:
    """Evict the caches holding closures of `states` (found stale by this advance).

    Returns None when the eviction alone makes every stale closure unreachable, else why the
    global fallback is needed (the caller bumps every `jax.jit`'s key then).
    """
    with _lock:
        funs: dict[int, object] = {}
        traced, jitted, reasons = [], [], []
        for state in states:
            held = state.held
            if held is None:
                continue
            if held.unknown is not None:
                reasons.append(held.unknown)
            for cache, ref in held.traced.values():
                fun = ref()
                if fun is not None:
                    traced.append((cache, fun))
                    funs[id(fun)] = fun
            for ref, jit_info in held.jitted.values():
                fun = ref()
                if fun is not None:
                    jitted.append((fun, jit_info))
                    funs[id(fun)] = fun
        reason = reasons[0] if reasons else staging_in_flight(funs)
        # Evicted in either case (with the global fallback, they would only hold memory).
        for cache, fun in traced:
            evict_traced(cache, fun)
        for fun, jit_info in jitted:
            evict_jitted(fun, jit_info)
        if reason is None:
            # From now on, a cache that hands one of these closures back to a compile is one
            # jaxworld did not know of: it lowers the new world instead (`for_lowering`). Not
            # after a global fallback: there, an old closure is lowered only by a computation
            # that was in flight, which finishes in the world it started in (issue #12).
            for state in states:
                state.invalidated = True
    if reason is None:
        _stats.count("scoped_invalidations")
    return reason


def evict_reached(values) -> None:
    """Before a re-trace after a change: drop JAX's traces of the user callables the record
    reaches (a plain `jax.jit` helper reading a changed global, a `scan` body), which the
    re-trace would otherwise be handed back from JAX's caches unchanged."""
    for value in values:
        evict_callable(value)


_refresh: Callable | None = None


def set_refresher(refresh: Callable) -> None:
    """`_closure.current`, which re-derives a stale closure (set once, by `_closure`)."""
    global _refresh
    _refresh = refresh


def describe(closure) -> str:
    """How a change to `closure`'s dependencies reaches JAX's caches (`jaxworld.explain`)."""
    held = closure._validity.held
    if closure._validity.traced is None:
        return "ephemeral: valid in every world"
    if held is None:
        return "held by no JAX cache jaxworld knows of"
    with _lock:
        return held.describe()


_epoch.register_invalidator(invalidate)
