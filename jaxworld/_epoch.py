"""The trace epoch: a global counter of worlds, like Julia's world age.

Every trace jaxworld makes is stamped with the epoch it is valid for. `advance()` starts a new
world: it checks every live trace's dependency record (`_deps`) and re-stamps the ones whose
record still holds; the others are re-traced on their next use.

An epoch stored in a primitive's params does not invalidate an outer `jax.jit` (its compiled
executable is reused without looking inside; see JAX-NOTES). So when — and only when — an advance
finds a record that changed, it evicts the JAX cache entries that hold the stale closures
(`_caches.py`, registered here as an *invalidator*): those `jax.jit` functions re-trace once, and
re-tracing reaches jaxworld, which hands out the new world's closures; every other `jax.jit`
stays warm. Where the invalidator cannot show that it reached every holder, the advance falls
back to bumping a JAX *user context* (`jax.make_user_context`), which is part of every `jax.jit`
cache key: every jitted function re-traces once (counted as ``global_invalidations``). A no-op
advance does neither, so nothing re-traces or re-compiles.

When a change becomes visible (issue #12)
-----------------------------------------
- `advance()` first waits for the traces jaxworld has in flight, then checks every record (at the
  *old* epoch: calls made meanwhile keep getting the old world, whole), then evicts what holds the
  stale closures (`_caches`), and only then publishes the new epoch (and, for the global
  fallback, the new `jax.jit` generation), under the lock that every trace takes before it
  starts. So no trace of ours runs while an advance is under way. A re-trace evicts the plain
  `jax.jit` helpers its record reaches, so none is handed an old jaxpr by JAX. An exception or a
  KeyboardInterrupt in a record check publishes nothing: the old world stays, whole, and the
  next advance checks again (an aborted epoch number is never reused).
- Before every trace it makes (a new input signature or a re-trace) jaxworld checks the live
  records (`sync()`) and, if one no longer holds, advances implicitly first. So a trace always
  happens in a consistent world: a change made without `advance()` is seen by the next trace
  *and* by every closure that depends on it, never by the one and not the other.
- A computation is pinned to one world (`pinned()`): the first wrapped call inside an enclosing
  trace (a `jax.jit`, `grad`, `vmap`, ... of code that calls wrapped functions) waits for an
  advance under way and fixes the epoch for every later wrapped call in that trace, even if
  another thread advances meanwhile (the older world's closure is kept for that: `_Entry.at`).
  When that world can no longer be served (a function with no trace of it, or a staged trace
  nested below the outermost one, which JAX would cache under the new generation), the
  computation moves to the new world if everything it used so far is still valid there, or
  raises `WorldChangeError` — never a mix.
- Otherwise a change is not seen until an advance: what was traced (a compiled `jax.jit`, a
  wrapped function whose trace is current, under any transformation) runs in the world it was
  traced in, as in Julia. In IPython, every cell starts with `sync()`, every top-level statement
  that defines, binds, imports or mutates ends with one, and every cell ends with `advance()`
  (`_ipython.py`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import jax

from . import _stats
from ._compat import is_eval_trace, is_staging_trace, trace_state_clean

_lock = threading.RLock()  # held by advance() and by sync(): every world change goes through it
_epoch = 0
_last_number = 0  # the last epoch number handed out (published, or burned by an aborted advance)
# The world generation seen by `jax.jit`'s caches, bumped by the global fallback only. Created
# once at import: `make_user_context` is not thread-safe to call concurrently with other JAX APIs.
_jit_world = jax.make_user_context(0)
_generation = 0
# After a global fallback, every cache entry of JAX keyed on an old generation is unreachable
# (generations never repeat) but holds its executable until JAX's LRU evicts it: ~1.5-1.9 MB per
# such advance for a small jitted Hessian, more for eager nested AD (issue #7, memory).
# Releasing costs ~2 ms (freeing what the entries hold) and leaves the next trace with cold
# caches, so it is done for several dead generations at once: memory stays bounded (at most
# RELEASE_EVERY - 1 dead generations held), and a relevant change costs about what a fresh plain
# `jax.jit` does (issue #6; BENCHMARKS.md).
RELEASE_EVERY = 8
_dead_generations = 0
_validators: list[Callable[[int], None]] = []
_invalidators: list[Callable[[list], str | None]] = []
_stale_states: list = []  # the states noted stale since the last advance (`note_stale`)
_generation_lock = threading.Lock()  # the generation changes under it (advance, or a fallback)
last_global_reason: str | None = None  # why the last global fallback was taken
_probes: list[Callable[[], bool]] = []
# Set by `note_stale()`, taken by `advance()`. Whoever finds a trace stale notes it, under that
# trace's own lock: `advance()` itself, or a trace that reached the function first. Deciding "did
# this advance make something stale?" from outside those locks let a re-trace finishing at the
# wrong moment leave every `jax.jit` in an old world for good (tests/test_threads.py).
_stale_noted = False
_note_lock = threading.Lock()  # held for an assignment only: never while taking another lock

# Traces jaxworld has in flight (outermost ones, one per thread at most): `advance()` publishes a
# new world only when there are none, so that a trace never straddles two worlds (issue #12).
_in_flight = 0
_in_flight_changed = threading.Condition(threading.Lock())
_local = threading.local()  # .depth: jaxworld traces nested on this thread; .pins: see pinned()


def epoch() -> int:
    """The current trace epoch (starts at 0; `advance()` increments it).

    Example:
      >>> import jaxworld
      >>> e = jaxworld.epoch()
      >>> jaxworld.advance() > e
      True
    """
    return _epoch


def advance() -> int:
    """Start a new world: later calls see code changes made before this call.

    Checks the dependency record of every live trace. Traces whose record holds are moved to the
    new epoch without re-tracing; traces whose record changed are re-traced on their next use, and
    the JAX cache entries that hold them are evicted (so a `jax.jit` built on a wrapped function
    gives the new world's answer), or, where those cannot all be found, every `jax.jit` in the
    process re-traces once (`jaxworld.stats()`: ``scoped_invalidations``,
    ``global_invalidations``). Thread-safe and atomic: calls made while it runs get the old world,
    calls made after it returns the new one, and an exception (or a KeyboardInterrupt) inside it
    leaves the old world in place. In IPython it runs after every cell (`jaxworld.auto_advance`).

    Returns:
      The new epoch.

    Raises:
      Whatever a dependency record's check raises (a KeyboardInterrupt, an exception in a user
      object's ``__eq__``): nothing is published then, the old world stays, and the next
      `advance()` checks again.
    """
    global _epoch, _last_number, _stale_noted
    with _lock:
        _wait_for_traces_in_flight()
        # A number is never reused: entries re-stamped by an aborted advance are checked again.
        _last_number += 1
        new = _last_number
        # Check every record while the old world is still the current one: a call made meanwhile
        # finds its closure valid (re-stamped for `new`, or still marked valid for the old epoch)
        # and runs wholly in the old world.
        for validate in list(_validators):
            validate(new)
        # Each trace found stale (by a validator, or earlier by a trace that got there first) has
        # noted it by now.
        with _note_lock:
            changed, _stale_noted = _stale_noted, False
            states, _stale_states[:] = list(_stale_states), []
        try:
            # Evict exactly the cache entries that hold a stale closure (`_caches`); only where
            # that cannot be shown to reach them all, every `jax.jit`'s key changes instead.
            reason = None
            if changed:
                reason = ("no invalidator registered" if not _invalidators
                          else next((r for invalidate in _invalidators
                                     if (r := invalidate(states)) is not None), None))
        except BaseException:
            with _note_lock:
                _stale_noted = True  # not published: the next advance must invalidate
                _stale_states.extend(states)
            raise
        # Publish the epoch, then (fallback only) the generation. A `jax.jit` call keyed on the
        # old generation that starts in between gets the new world's closures, under a key no
        # later call uses; the other order would let one keyed on the new generation take a
        # closure of the old epoch (`_wrap._inline` takes closures without waiting on `_lock`).
        _epoch = new
        if reason is not None:
            _bump_generation(reason)
            if _dead_generations >= RELEASE_EVERY:
                release_caches()
        return new


def _bump_generation(reason: str) -> None:
    """The global fallback: change every `jax.jit`'s cache key (all of them re-trace once)."""
    global _generation, _dead_generations, last_global_reason
    with _generation_lock:
        _generation += 1
        _jit_world.set_global(_generation)
        _dead_generations += 1
        last_global_reason = reason
    _stats.count("global_invalidations")


def invalidate_everything(reason: str) -> None:
    """Fall back to the global bump now (a cache jaxworld did not know of held an old trace)."""
    _bump_generation(reason)


def sync() -> bool:
    """Advance if a live trace's dependency record no longer holds; returns whether it did.

    jaxworld calls this before every trace it makes and when a computation starts (see the
    module docstring), so that a change made without `advance()` cannot be seen by some traces of
    a computation and not by others. Cost: one check of every live record (what a no-op
    `advance()` does), at C speed when the records' guards hold.
    """
    with _lock:
        if any(probe() for probe in list(_probes)):
            advance()
            return True
        return False


def _wait_for_traces_in_flight() -> None:
    mine = getattr(_local, "depth", 0) > 0  # advance() called from inside a trace on this thread
    with _in_flight_changed:
        while _in_flight > int(mine):
            _in_flight_changed.wait()


class _TraceScope:
    """`with tracing(sync_first):` around every trace jaxworld makes (see `tracing`)."""

    __slots__ = ("sync_first", "outermost")

    def __init__(self, sync_first: bool):
        self.sync_first = sync_first
        self.outermost = False

    def __enter__(self):
        global _in_flight
        depth = getattr(_local, "depth", 0)
        if depth == 0:
            with _lock:  # waits for an advance under way; none can start until we leave
                if self.sync_first:
                    sync()
                with _in_flight_changed:
                    _in_flight += 1
            self.outermost = True
        _local.depth = depth + 1
        return self

    def __exit__(self, *exc):
        global _in_flight
        _local.depth -= 1
        if self.outermost:
            with _in_flight_changed:
                _in_flight -= 1
                _in_flight_changed.notify_all()
        return False


def tracing(sync_first: bool) -> _TraceScope:
    """Around a trace (or a check that may lead to one) of a wrapped function.

    The outermost one on a thread waits for an advance under way, runs `sync()` if `sync_first`,
    and keeps `advance()` from publishing a new world until it ends. Nested ones (a wrapped helper
    traced inside another wrapped function's trace) belong to the outermost: they neither wait nor
    sync, as the world cannot change under them.
    """
    return _TraceScope(sync_first)


def settle() -> None:
    """Wait for an advance under way on another thread (none can start while a trace of ours is
    in flight on this one: then there is nothing to wait for)."""
    if not in_trace():
        with _lock:
            pass


def in_trace() -> bool:
    """Whether this thread is inside a trace jaxworld is making."""
    return getattr(_local, "depth", 0) > 0


class Pin:
    """The world of one computation: its epoch and the root closures it used so far."""

    __slots__ = ("epoch", "used", "__weakref__")

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.used: dict[int, object] = {}  # id -> root closure

    def move_to(self, new_epoch: int, valid_at: Callable[[object, int], bool]) -> bool:
        """Move the computation to `new_epoch` if every closure it used is valid there too."""
        if all(valid_at(closure, new_epoch) for closure in self.used.values()):
            self.epoch = new_epoch
            return True
        return False


def _outermost(trace):
    """The outermost trace that is not an evaluation, following `parent_trace` links."""
    root, seen = trace, set()
    while trace is not None and id(trace) not in seen:
        seen.add(id(trace))
        if not is_eval_trace(trace):
            root = trace
        trace = getattr(trace, "parent_trace", None)
    return root


class _Retracing:
    """`with retracing(e):` around a trace jaxworld makes of a wrapped function for epoch `e`."""

    __slots__ = ("pin",)

    def __init__(self, e: int):
        self.pin = Pin(e)

    def __enter__(self):
        stack = getattr(_local, "retraces", None)
        if stack is None:
            stack = _local.retraces = []
        stack.append(self.pin)
        return self.pin

    def __exit__(self, *exc):
        _local.retraces.pop()
        return False


def retracing(e: int) -> _Retracing:
    """Pin the wrapped calls made inside a trace of ours (nested helpers, nested `jax.jit`s) to
    the epoch `e` the trace is for — not to the world of an enclosing computation: the closure
    being traced is cached for epoch `e`."""
    return _Retracing(e)


def pinned(trace) -> Pin:
    """The world of the computation `trace` belongs to (its outermost enclosing trace).

    The first wrapped call of a computation waits for an advance under way and pins the
    computation to the current epoch; every later wrapped call in it gets the same `Pin`. Inside
    a trace jaxworld makes, the world is that trace's (`retracing`).
    """
    stack = getattr(_local, "retraces", None)
    if stack:
        return stack[-1]
    root = _outermost(trace)
    pins = getattr(_local, "pins", None)
    if pins is None:
        pins = _local.pins = weakref.WeakKeyDictionary()
    pin = pins.get(root)
    if pin is None:
        if not in_trace():  # inside a trace of ours no advance can publish: nothing to wait for
            with _lock:  # an advance under way: start in the world it publishes
                pass
        pin = pins[root] = Pin(_epoch)
    return pin


def cached_by_jax_in_this_generation(trace) -> bool:
    """Whether `trace` is inside a staged trace below the computation's outermost one.

    Such a trace (a `jax.jit`, `lax.scan` body, ... nested in the computation) is cached by JAX
    under the generation current *now*: it must not hold an older world's closure, or a later
    call in the new world could be handed it. The outermost trace was keyed when the computation
    started, in its own world's generation.
    """
    root = _outermost(trace)
    seen = set()
    while trace is not None and trace is not root and id(trace) not in seen:
        seen.add(id(trace))
        if is_staging_trace(trace):
            return True
        trace = getattr(trace, "parent_trace", None)
    return False


_CLEAR_ATTEMPTS = 3


def release_caches() -> bool:
    """Release JAX's cache entries made under dead world generations (see `RELEASE_EVERY`).

    Returns whether it did. `jax.clear_caches()` iterates JAX's registry of caches (a
    `WeakKeyDictionary`) without a lock, so a cache that another thread's trace creates meanwhile
    makes it raise ``RuntimeError: dictionary changed size during iteration`` (seen once in 58
    stress runs of tests/test_concurrency.py, raised out of `advance()` after the new world was
    published). Releasing is only about memory: it is tried again, and if JAX's registry keeps
    changing, left for the next relevant advance (the dead generations stay counted).
    """
    global _dead_generations
    if not trace_state_clean():
        # Inside a JAX trace on this thread (an advance made by `sync()` when a wrapped function
        # is first traced inside a `jax.jit`): `jax.clear_caches()` would empty the C++ cache of
        # the jitted function being traced while it runs. Left for the next relevant advance.
        return False
    with _lock:
        for attempt in range(_CLEAR_ATTEMPTS):
            try:
                jax.clear_caches()
            except RuntimeError as error:
                if "changed size during iteration" not in str(error):
                    raise
                if attempt == _CLEAR_ATTEMPTS - 1:
                    return False
                continue
            _dead_generations = 0
            return True
        return False


def note_stale(closure) -> None:
    """A trace that a `jax.jit` may hold has just been found stale.

    Call it under the lock of the trace's entry. The advance under way (or, if none is, the next
    one) then evicts the JAX caches that hold it (`_caches`), or bumps the `jax.jit` world
    generation where those are not all known.
    """
    global _stale_noted
    with _note_lock:
        _stale_noted = True
        _stale_states.append(closure._validity)


def register_invalidator(invalidate: Callable[[list], str | None]) -> None:
    """`invalidate(states)` runs inside a relevant `advance()`: it evicts what holds the stale
    states and returns None, or returns why every `jax.jit` must be invalidated instead."""
    with _lock:
        _invalidators.append(invalidate)


def register_validator(validate: Callable[[int], None]) -> None:
    """`validate(new_epoch)` runs inside `advance()`; it calls `note_stale()` for what changed."""
    with _lock:
        _validators.append(validate)


def register_probe(probe: Callable[[], bool]) -> None:
    """`probe()` runs inside `sync()`: True if some live record no longer holds (read-only)."""
    with _lock:
        _probes.append(probe)
