"""Counters of the work jaxworld does: traces, derivations, compilations.

`jaxworld.stats()` is how tests (and users) check that a steady-state call or a no-op `advance()`
re-traces nothing. Counters are kept globally and per *owner* (a wrapped function, an operator or
a root closure), so `jaxworld.stats(obj)` answers for one object alone.
"""

from __future__ import annotations

import collections
import threading
import weakref
from collections.abc import Mapping
from typing import Any

_KINDS = ("traces", "derivations", "compilations", "validations", "restamps",
          "scoped_invalidations", "global_invalidations")

_lock = threading.Lock()
_global: collections.Counter[str] = collections.Counter()
# Per-owner counters; weak so that counting never keeps a dead function alive.
_per_owner: weakref.WeakKeyDictionary[Any, collections.Counter[str]] = weakref.WeakKeyDictionary()


def count(kind: str, owner: Any = None, n: int = 1) -> None:
    with _lock:
        _global[kind] += n
        if owner is not None:
            try:
                counter = _per_owner.get(owner)
                if counter is None:
                    counter = _per_owner[owner] = collections.Counter()
            except TypeError:  # not weak-referenceable: only counted globally
                return
            counter[kind] += n


def stats(obj: Any = None) -> Mapping[str, int]:
    """Counts of jaxworld's work since the last `reset_stats()`.

    Args:
      obj: optional wrapped function (from `jaxworld.wrap`), `OpaqueClosure` or operator. Without
        it, the counts are for the whole process.

    Returns:
      A mapping with keys ``traces`` (Python callables traced into jaxprs by jaxworld),
      ``derivations`` (derived closures built: jvp, linearize, transpose, vmap, ...),
      ``compilations`` (executables compiled for eager calls of closures), ``validations``
      (dependency records checked after an advance) and ``restamps`` (closures whose record held,
      moved to the new epoch without a re-trace).

    Example:
      >>> import jax.numpy as jnp, jaxworld
      >>> f = jaxworld.wrap(lambda x: jnp.sin(x))
      >>> _ = f(1.0)
      >>> jaxworld.stats(f)["traces"]
      1
    """
    owner = getattr(obj, "_stats_owner", obj)
    with _lock:
        if obj is None:
            source = _global
        else:
            source = _per_owner.get(owner, collections.Counter())
        return {kind: source.get(kind, 0) for kind in _KINDS}


def reset_stats() -> None:
    """Set every counter of `jaxworld.stats` back to zero."""
    with _lock:
        _global.clear()
        for counter in _per_owner.values():
            counter.clear()
