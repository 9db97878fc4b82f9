"""The validity of a trace: its states, its transitions and the one "is it current?" test.

How validity works
------------------
Every root `OpaqueClosure` (a trace of a wrapped function's origin, made by its cache entry) owns
one `State`; every closure derived from it (jvp, linearize, transpose, vmap, DCE, partial eval)
shares its root's `State` object, so a derived closure is current exactly when its root is. This
module is the only one that reads or writes a `State`'s fields; everything else asks the
functions below (`OpaqueClosure` offers read-only views of them for `jaxworld.explain`).

A root trace is in one of these states (`state_of`):

- **current**: traced at epoch ``T`` and valid through ``V >= epoch()`` with ``T == V``;
- **re-stamped**: current with ``V > T``: an `advance()` (or the first use after one) checked
  its dependency record, found it holding, and moved ``V`` to the new epoch (`restamp`), with no
  re-trace;
- **unchecked**: ``V < epoch()``, nothing known yet: its record is checked on its next use (the
  entry's `current`), which either re-stamps it or finds it stale;
- **pending**: its record no longer holds for epoch ``e`` (`mark_pending` keeps the changes, for
  messages and `jaxworld.explain`): the entry re-traces it on its next use, per the policy;
- **frozen**: the stale-closure policy 'frozen' keeps it (`freeze`): valid in every world until
  the next advance re-applies the policy in force (`thaw`);
- **retired**: its entry re-traced and replaced it (`retire`); a computation pinned to an older
  world may still use it while `valid_at` that world, and a closure derived from it refreshes to
  the replacement's derivation (`successor`).

The test (`is_current`) is one comparison: ``V >= epoch() or frozen``. `valid_at(closure, e)`
asks whether a root is the trace of world ``e`` (``T <= e <= V``), for computations pinned to
one world (`_epoch.pinned`). Nothing here re-traces: a root's way back to its origin is its
`Source` (a wrapped function's cache entry, `_wrap._Entry`, which implements `Source.current`),
and a derived closure's is its `Derivation`, both followed by `_closure.current`.

Import layers, bottom first (no cycle, lazy imports included: tests/test_imports.py): `_compat`
(JAX), `_stats`, `_errors`; `_epoch`; `_validity` (this module) and `_primitive` (`world_call_p`,
`bind`, every rule and deriver), neither importing the other; `_closure` (`OpaqueClosure`,
`derive`, `current`); `_wrap`; `_operators`, `_explain`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from . import _epoch

if TYPE_CHECKING:
    from ._closure import OpaqueClosure

NEVER_STALE = sys.maxsize  # `valid_through` of an ephemeral closure (no entry, never re-traced)

STATES = ("current", "re-stamped", "unchecked", "pending", "frozen", "retired")


class State:
    """The validity of one root trace (shared by every closure derived from it)."""

    __slots__ = ("traced", "through", "frozen", "pending", "validated", "retired", "held",
                 "invalidated")

    def __init__(self, epoch: int | None, ephemeral: bool):
        self.through = NEVER_STALE if ephemeral else (_epoch.epoch() if epoch is None else epoch)
        self.traced = None if ephemeral else self.through
        self.frozen = False
        self.pending: tuple[int, list] | None = None  # (epoch, changes) while stale
        self.validated = -1  # the last epoch `mark_validated` was called for
        self.retired = False
        self.held = None  # `_caches.Held`: the JAX caches that hold its closures
        self.invalidated = False  # an advance evicted it from those caches (`_caches`)


class Source:
    """Where a root closure comes from: it can hand out the trace of the current world.

    `_wrap._Entry` (one input signature of a wrapped function) is the only implementation: its
    `current` re-stamps its root or re-traces it from the origin. Declared here, below
    `_closure`, so that refreshing a stale root needs no call up the import graph.
    """

    __slots__ = ()

    def current(self) -> OpaqueClosure:
        raise NotImplementedError


# -- the one test -------------------------------------------------------------------------------

def is_current(closure: OpaqueClosure) -> bool:
    """Whether `closure` (root or derived) is valid in the current world."""
    state = closure._validity
    return state.through >= _epoch._epoch or state.frozen


def is_current_at(closure: OpaqueClosure, e: int) -> bool:
    """`is_current` for an epoch `e` read earlier (under the caller's lock)."""
    state = closure._validity
    return state.through >= e or state.frozen


def valid_at(closure: OpaqueClosure, e: int) -> bool:
    """Whether `closure`'s root is the trace of world `e` (or frozen, valid in every world)."""
    state = closure._validity
    traced = state.traced
    return state.frozen or (traced is not None and traced <= e <= state.through)


def outlived(closure: OpaqueClosure, e: int) -> bool:
    """Whether an advance has completed since epoch `e - 1` without re-stamping `closure`: no
    computation pinned to a world it is valid in can still be running (`_Entry.previous`)."""
    return closure._validity.through < e - 1


# -- read-only views ----------------------------------------------------------------------------

def epoch_of(closure: OpaqueClosure) -> int:
    """The latest epoch `closure` is known to be valid for (the current one if ephemeral)."""
    through = closure._validity.through
    return _epoch.epoch() if through == NEVER_STALE else through


def traced_epoch(closure: OpaqueClosure) -> int | None:
    return closure._validity.traced


def valid_through(closure: OpaqueClosure) -> int:
    return closure._validity.through


def is_frozen(closure: OpaqueClosure) -> bool:
    return closure._validity.frozen


def pending(closure: OpaqueClosure | None) -> tuple[int, list] | None:
    """``(epoch, changes)`` if `closure`'s record was found changed and it awaits a re-trace."""
    return None if closure is None else closure._validity.pending


def validated_epoch(closure: OpaqueClosure | None) -> int:
    return -1 if closure is None else closure._validity.validated


def state_of(closure: OpaqueClosure) -> str:
    """One of `STATES` (see the module docstring)."""
    state = closure._validity
    if state.retired:
        return "retired"
    if state.frozen:
        return "frozen"
    if state.pending is not None:
        return "pending"
    if state.through < _epoch._epoch:
        return "unchecked"
    return "current" if state.traced == state.through or state.traced is None else "re-stamped"


# -- transitions (called by the root's entry, under its lock) -----------------------------------

def restamp(closure: OpaqueClosure, e: int) -> None:
    """unchecked -> re-stamped: its record holds for epoch `e`."""
    closure._validity.through = e


def mark_validated(closure: OpaqueClosure, e: int) -> None:
    closure._validity.validated = e


def mark_pending(closure: OpaqueClosure, e: int, changes: list) -> None:
    """unchecked -> pending: its record changed for epoch `e`."""
    closure._validity.pending = (e, changes)


def freeze(closure: OpaqueClosure) -> None:
    """pending -> frozen (policy 'frozen'): valid in every world until `thaw`."""
    closure._validity.frozen = True


def thaw(closure: OpaqueClosure, *, drop_pending: bool) -> None:
    """frozen -> unchecked (an advance re-applies the policy in force)."""
    state = closure._validity
    state.frozen = False
    if drop_pending:
        state.pending = None


def retire(closure: OpaqueClosure) -> None:
    """-> retired: its entry re-traced and replaced it."""
    closure._validity.retired = True


# -- successors: where a stale closure was refreshed to (`_closure.current`) ---------------------

def successor(closure: OpaqueClosure) -> OpaqueClosure | None:
    """The closure `closure` was last refreshed to, if that one is still current."""
    new = closure._successor
    return new if new is not None and is_current(new) else None


def set_successor(closure: OpaqueClosure, new: Any) -> None:
    closure._successor = new
