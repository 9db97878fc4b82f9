"""`OpaqueClosure`: a jaxpr that remembers where it came from and which world it is valid for.

A *root* closure is traced from a Python callable, its `origin`. A *derived* closure is the result
of a transformation (jvp, linearize, transpose, vmap, partial evaluation, DCE) of a parent closure;
its `derivation` names the transformation, the parent and the parameters that, with the parent,
determine it. That is the back reference Mooncake.jl's MistyClosures lacked (Mooncake #916): when
the world advances and the root is re-traced from its origin, every derived closure can be derived
again from the fresh root instead of differentiating a stale jaxpr.

Derivations are cached on their parent, keyed by transformation and parameters, so the second
`jax.hessian` of the same wrapped function derives nothing new. The derivers themselves live in
`_primitive.py`, beside the rules that use them (`_primitive.DERIVERS`).

Whether a closure is current, and every change of that state, is `_validity`'s: a root owns a
`_validity.State` that its derived closures share; `current` below follows the way back (the
root's `_validity.Source`, or the `Derivation`) when it is not.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from . import _caches, _epoch, _stats, _validity
from ._compat import ClosedJaxpr, eval_jaxpr, typeof
from ._errors import WorldChangeError
from ._primitive import DERIVERS, bind, identifier
from ._text import short_aval


class Derivation(NamedTuple):
    """How a derived `OpaqueClosure` was obtained from its parent.

    Attributes:
      transformation: ``"jvp"``, ``"linearize"``, ``"transpose"``, ``"vmap"``, ``"dce"``,
        ``"partial_eval"`` or ``"partial_eval_custom"``.
      part: which output of the transformation this closure is (``"primal"`` / ``"tangent"`` for
        linearize, ``"known"`` / ``"staged"`` for partial evaluation), or ``None``.
      parent: the closure that was transformed.
      params: the hashable parameters of the transformation (which inputs are non-zero tangents,
        which are batched, ...).
    """

    transformation: str
    part: str | None
    parent: OpaqueClosure
    params: tuple

    def __repr__(self) -> str:
        part = f".{self.part}" if self.part else ""
        return f"Derivation({self.transformation}{part} of {self.parent.name})"


class Derived(NamedTuple):
    """The closures and metadata one transformation of a parent produced."""

    closures: dict[str | None, OpaqueClosure]
    meta: Any


class OpaqueClosure:
    """A traced jaxpr plus a back reference to its origin and the epoch it is valid for.

    Instances are made by jaxworld (by `jaxworld.wrap` and by the rules of the `world_call`
    primitive); users meet them as the ``closure`` parameter of ``world_call`` equations, as the
    pullback of `jaxworld.vjp`, and in `jaxworld.explain`.

    Attributes (read-only):
      origin: the Python callable the root of this closure was traced from.
      epoch: the latest epoch this closure's jaxpr is known to be valid for.
      jaxpr: the `jax.extend.ClosedJaxpr`.
      in_avals / out_avals: tuples of abstract values of the flat inputs and outputs.
      derivation: ``None`` for a closure traced from `origin`, else a `Derivation`.

    Calling a closure with flat array arguments evaluates it (compiled once, then cached).

    Example:
      >>> import jax, jax.numpy as jnp, jaxworld
      >>> f = jaxworld.wrap(lambda x: jnp.sin(x) * 2.0)
      >>> eqn = jax.make_jaxpr(f)(1.0).eqns[0]
      >>> closure = eqn.params["closure"]
      >>> closure.derivation is None and float(closure(0.0)) == 0.0
      True

    Raises:
      TypeError: a call with another number of array arguments, or another shape or dtype, than
        the closure's signature (call the wrapped function instead: it traces the new signature).
      WorldChangeError: a call of a stale closure whose re-trace in the current world changed its
        signature (its derived closures cannot follow it).
    """

    __slots__ = (
        "_jaxpr", "_origin", "_derivation", "_validity", "_root", "_entry", "_name",
        "_in_tree", "_out_tree", "_derived", "_lock", "_jitted", "_successor", "_meta",
        "_users", "_stats_owner", "__weakref__",
    )

    def __init__(self, jaxpr: ClosedJaxpr, *, origin: Any = None,
                 derivation: Derivation | None = None, epoch: int | None = None,
                 entry: _validity.Source | None = None, in_tree=None, out_tree=None,
                 meta: Any = None,
                 name: str | None = None, ephemeral: bool = False):
        self._jaxpr = jaxpr
        self._derivation = derivation
        self._derived: dict[tuple, Derived] = {}
        self._lock = threading.RLock()
        self._jitted = None
        self._successor: OpaqueClosure | None = None
        self._meta = meta
        if derivation is None:
            self._origin = origin
            # `None` rather than `self`: a self-reference would make every root a reference cycle
            # that only the cyclic GC frees (see `retire`).
            self._root = None
            self._validity = _validity.State(epoch, ephemeral)
            self._entry = entry
            self._in_tree = in_tree
            self._out_tree = out_tree
            self._name = name or _callable_name(origin)
            self._users: weakref.WeakSet = weakref.WeakSet()
            self._stats_owner = entry.owner if entry is not None else self
        else:
            parent = derivation.parent
            self._origin = None
            self._root = parent._root or parent
            self._validity = parent._validity  # current exactly when its root is
            self._entry = None
            self._in_tree = None
            self._out_tree = None
            part = f".{derivation.part}" if derivation.part else ""
            self._name = f"{derivation.transformation}{part}({parent._name})"
            self._users = None
            self._stats_owner = parent._stats_owner

    # -- public, read-only -------------------------------------------------------------------
    @property
    def origin(self) -> Any:
        return (self._root or self)._origin

    @property
    def epoch(self) -> int:
        return _validity.epoch_of(self)

    @property
    def jaxpr(self) -> ClosedJaxpr:
        return self._jaxpr

    @property
    def in_avals(self) -> tuple:
        return tuple(self._jaxpr.in_avals)

    @property
    def out_avals(self) -> tuple:
        return tuple(self._jaxpr.out_avals)

    @property
    def derivation(self) -> Derivation | None:
        return self._derivation

    @property
    def name(self) -> str:
        """A readable name: the origin's name wrapped in the transformations that derived it."""
        return self._name

    @property
    def is_current(self) -> bool:
        """Whether this closure is valid in the current world (no re-trace or re-derivation due)."""
        return _validity.is_current(self)

    # Read-only views of the validity state (`_validity` writes it), for `jaxworld.explain`.
    @property
    def _valid_through(self) -> int:
        return _validity.valid_through(self)

    @property
    def _traced_epoch(self) -> int | None:
        return _validity.traced_epoch(self)

    @property
    def _frozen(self) -> bool:
        return _validity.is_frozen(self)

    def signature(self) -> str:
        ins = ", ".join(short_aval(a) for a in self._jaxpr.in_avals)
        outs = ", ".join(short_aval(a) for a in self._jaxpr.out_avals)
        return f"({ins}) -> ({outs})"

    def __str__(self) -> str:
        # This is what a printed jaxpr shows as the `closure=` parameter of `world_call`.
        return f"{self._name}@epoch{self.epoch}"

    def __repr__(self) -> str:
        return f"<OpaqueClosure {self._name} epoch={self.epoch} {self.signature()}>"

    def __call__(self, *args):
        leaves = jax.tree_util.tree_leaves(args)
        if len(leaves) != len(self._jaxpr.in_avals):
            raise TypeError(
                f"jaxworld.OpaqueClosure {self._name} takes {len(self._jaxpr.in_avals)} array "
                f"argument(s) {self.signature().split(' -> ')[0]}, got {len(leaves)}. Pass the "
                "flat array arguments of the closure's signature.")
        for i, (x, aval) in enumerate(zip(leaves, self._jaxpr.in_avals, strict=True)):
            got = typeof(x)
            if got.shape != aval.shape or got.dtype != aval.dtype:
                raise TypeError(
                    f"jaxworld.OpaqueClosure {self._name}: argument {i} must be "
                    f"{short_aval(aval)}, got {short_aval(got)} (signature "
                    f"{self.signature()}). A closure is traced for one input signature; call "
                    "the wrapped function instead to trace another.")
        outs = bind(current(self), *leaves)  # a call starts a computation: the current world
        if self._out_tree is not None:
            return jax.tree_util.tree_unflatten(self._out_tree, outs)
        return list(outs)

    # -- evaluation --------------------------------------------------------------------------
    def executable(self) -> Callable:
        """A `jax.jit`-compiled function evaluating this closure, built once and cached."""
        jitted = self._jitted
        if jitted is None:
            with self._lock:
                if self._jitted is None:
                    jaxpr, owner = self._jaxpr, self._stats_owner

                    def evaluate(*args):
                        # Runs once per compilation (jit traces exactly when it compiles here).
                        _stats.count("compilations", owner)
                        return eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *args)

                    evaluate.__name__ = identifier(self._name)
                    self._jitted = jax.jit(evaluate)
                jitted = self._jitted
        return jitted

    def derive(self, transformation: str, params: tuple) -> Derived:
        """`derive(self, transformation, params)`: what `world_call`'s rules call."""
        return derive(self, transformation, params)


def _callable_name(fun: Any) -> str:
    for attr in ("__qualname__", "__name__"):
        name = getattr(fun, attr, None)
        if isinstance(name, str):
            return name
    func = getattr(fun, "func", None)  # functools.partial
    if func is not None:
        return f"partial({_callable_name(func)})"
    return type(fun).__name__


def derive(parent: OpaqueClosure, transformation: str, params: tuple) -> Derived:
    """The result of `transformation` applied to `parent` with `params`, cached on the parent."""
    key = (transformation, params)
    derived = parent._derived.get(key)
    if derived is None:
        with parent._lock:
            derived = parent._derived.get(key)
            if derived is None:
                parts, meta = DERIVERS[transformation](parent._jaxpr, *params)
                closures = {
                    part: OpaqueClosure(
                        jaxpr, derivation=Derivation(transformation, part, parent, params),
                        meta=meta)
                    for part, jaxpr in parts.items()
                }
                derived = Derived(closures, meta)
                parent._derived[key] = derived
                _stats.count("derivations", parent._stats_owner)
    return derived


def retire(root: OpaqueClosure) -> None:
    """Release the caches of a root that its entry replaced (a re-trace in a new world).

    A parent caches its derived closures and each derived closure points back at its parent: the
    tree is full of reference cycles, which only the cyclic GC would free — late, while the
    executables they hold sit in native memory the GC does not see. Emptying the derivation
    caches and executables leaves the tree acyclic, so reference counting frees whatever nobody
    else holds at once. A retired closure still in use elsewhere (a jaxpr someone kept) stays
    correct: it derives and compiles again on demand.
    """
    _validity.retire(root)
    stack = [root]
    while stack:
        closure = stack.pop()
        with closure._lock:
            derived, closure._derived = closure._derived, {}
            closure._jitted = None
        for result in derived.values():
            stack.extend(result.closures.values())


def current(closure: OpaqueClosure) -> OpaqueClosure:
    """The closure to use in the current world in place of `closure`.

    Fast path: one comparison. A stale root is re-validated (and re-traced if its dependencies
    changed) through its cache entry; a stale derived closure is derived again from its current
    parent. If that changes the closure's signature, worlds would mix: raise `WorldChangeError`.
    """
    if _validity.is_current(closure):
        return closure
    return _refresh(closure)


def _refresh(closure: OpaqueClosure) -> OpaqueClosure:
    successor = _validity.successor(closure)
    if successor is not None:
        return successor
    derivation = closure._derivation
    if derivation is None:
        source = closure._entry
        if source is None:
            return closure  # a closure with no way back (none made by jaxworld today)
        new = source.current()  # re-stamps it or re-traces it from the origin
    else:
        parent = current(derivation.parent)
        if parent is derivation.parent:
            return closure  # the parent was re-stamped: so is this closure
        derived = derive(parent, derivation.transformation, derivation.params)
        new = derived.closures[derivation.part]
        if derived.meta != closure._meta:
            raise world_change_error(closure, new, "the structure of its derivation changed")
    if new is not closure:
        check_same_signature(closure, new)
        _validity.set_successor(closure, new)
    return new


def check_same_signature(old: OpaqueClosure, new: OpaqueClosure) -> None:
    if (old.in_avals != new.in_avals or old.out_avals != new.out_avals
            or old._out_tree != new._out_tree):
        raise world_change_error(old, new, "its signature changed")


def world_change_error(old: OpaqueClosure, new: OpaqueClosure, why: str) -> WorldChangeError:
    tree = ""
    if old._out_tree != new._out_tree:
        tree = f"\n  old output structure: {old._out_tree}\n  new output structure: {new._out_tree}"
    return WorldChangeError(
        f"jaxworld: re-tracing {old.name} in the new world (epoch {_epoch.epoch()}) changed what "
        f"an enclosing computation already relied on: {why}.\n"
        f"  old signature (epoch {old.epoch}): {old.signature()}\n"
        f"  new signature: {new.signature()}{tree}\n"
        "Worlds are never mixed silently. Re-create the enclosing computation (call the outer "
        "function again or re-trace it) after `jaxworld.advance()`, or keep the output structure, "
        "shapes and dtypes of the redefined code unchanged.")


_caches.set_refresher(current)  # the lowering rule lowers the current world (`_caches`)
