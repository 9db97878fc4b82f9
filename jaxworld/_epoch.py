"""The trace epoch: a global counter of worlds, like Julia's world age.

Every trace jaxworld makes is stamped with the epoch it is valid for. `advance()` starts a new
world: it checks every live trace's dependency record (`_deps.py`) and re-stamps the ones whose
record still holds; the others are re-traced on their next use.

An epoch stored in a primitive's params does not invalidate an outer `jax.jit` (its compiled
executable is reused without looking inside; see JAX-NOTES). So when — and only when — an advance
finds a record that changed, it also bumps a JAX *user context* (`jax.make_user_context`), which is
part of every `jax.jit` cache key: every jitted function re-traces once, and re-tracing reaches
jaxworld, which hands out the new world's closures. A no-op advance leaves the user context alone,
so nothing re-traces or re-compiles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import jax

_lock = threading.RLock()
_epoch = 0
# The world generation seen by `jax.jit`'s caches. Created once at import: `make_user_context` is
# not thread-safe to call concurrently with other JAX APIs.
_jit_world = jax.make_user_context(0)
_generation = 0
# Every cache entry of JAX keyed on an old generation is unreachable once the generation is bumped
# (generations never repeat) but holds its executable until JAX's LRU evicts it: ~1.5-1.9 MB per
# relevant advance for a small jitted Hessian, more for eager nested AD (issue #7, memory).
# Releasing costs ~2 ms (freeing what the entries hold) and leaves the next trace with cold
# caches, so it is done for several dead generations at once: memory stays bounded (at most
# RELEASE_EVERY - 1 dead generations held), and a relevant change costs about what a fresh plain
# `jax.jit` does (issue #6; BENCHMARKS.md).
RELEASE_EVERY = 8
_dead_generations = 0
_validators: list[Callable[[int], None]] = []
# Set by `note_stale()`, taken by `advance()`. Whoever finds a trace stale notes it, under that
# trace's own lock: `advance()` itself, or a trace that reached the function first while the
# advance was under way. Deciding "did this advance make something stale?" from outside those
# locks let a re-trace finishing at the wrong moment leave every `jax.jit` in an old world for
# good (tests/test_threads.py, the deterministic interleavings).
_stale_noted = False
_note_lock = threading.Lock()  # held for an assignment only: never while taking another lock


def epoch() -> int:
    """The current trace epoch (starts at 0; `advance()` increments it).

    Example:
      >>> import jaxworld
      >>> e = jaxworld.epoch()
      >>> jaxworld.advance() == e + 1
      True
    """
    return _epoch


def advance() -> int:
    """Start a new world: later calls see code changes made before this call.

    Checks the dependency record of every live trace. Traces whose record holds are moved to the
    new epoch without re-tracing; traces whose record changed are re-traced on their next use, and
    every `jax.jit` in the process re-traces once (so a `jax.jit` built on a wrapped function gives
    the new world's answer). Thread-safe. In IPython, `%load_ext jaxworld` calls this after every
    cell.

    Returns:
      The new epoch.
    """
    global _epoch, _generation, _dead_generations, _stale_noted
    with _lock:
        _epoch += 1
        new = _epoch
        for validate in list(_validators):
            validate(new)
        # Every trace that was live when the epoch moved has been checked: each one found stale
        # (by a validator, or by a trace that got there first) has noted it by now.
        with _note_lock:
            changed, _stale_noted = _stale_noted, False
        if changed:
            _generation += 1
            _jit_world.set_global(_generation)
            _dead_generations += 1
            if _dead_generations >= RELEASE_EVERY:
                release_caches()
        return new


def release_caches() -> None:
    """Release JAX's cache entries made under dead world generations (see `RELEASE_EVERY`)."""
    global _dead_generations
    with _lock:
        _dead_generations = 0
        jax.clear_caches()



def note_stale() -> None:
    """A trace that a `jax.jit` may hold has just been found stale.

    Call it under the lock of the trace's entry. The advance under way (or, if none is, the next
    one) then bumps the `jax.jit` world generation.
    """
    global _stale_noted
    with _note_lock:
        _stale_noted = True


def register_validator(validate: Callable[[int], None]) -> None:
    """`validate(new_epoch)` runs inside `advance()`; it calls `note_stale()` for what changed."""
    with _lock:
        _validators.append(validate)
