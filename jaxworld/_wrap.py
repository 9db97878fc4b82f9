"""`jaxworld.wrap`: a drop-in wrapper whose calls travel as one opaque `world_call` equation.

A wrapped function keeps one cache entry per input signature (tree structure, shapes, dtypes,
weak types, static values), like `jax.jit`. An entry holds the root `OpaqueClosure` traced from
the origin, the dependency record of that trace (`_deps.py`) and the wrapped helpers the trace
called. `advance()` validates every live entry: a record that holds re-stamps the closure with the
new epoch; one that changed makes the entry re-trace from the origin on its next use — through a
fresh trace, around JAX's own caches, which key on the callable's identity and would hand back the
old jaxpr.

Arguments are filtered as `_filter.py` says (array leaves traced, every other leaf static). An
eager call (outside every transformation) is a `jax.jit` dispatch of the traced call, so it costs
what `jax.jit` costs (issue #14); the jit re-traces after a relevant `advance()`, like any other.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
import types
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax import config as jax_config
from jax import tree_util

from . import _caches, _epoch, _stats, _validity
from ._closure import OpaqueClosure, retire, world_change_error
from ._compat import (
    ClosedJaxpr,
    Jaxpr,
    Tracer,
    convert_constvars_jaxpr,
    current_trace,
    debug_info,
    enclosing_traces,
    eval_jaxpr,
    infer_argnums_and_argnames,
    is_eval_trace,
    jax_trace_config_values,
    jaxprs_in_params,
    out_of_key_config,
    trace_to_jaxpr_dynamic,
    wrap_init,
)
from ._deps import Change, DependencyRecord, reused_user_traces
from ._errors import StaleClosureError, StaleClosureWarning, WorldChangeError, user_stacklevel
from ._filter import abstractify_all, all_traced, filter_leaves, mark_static
from ._policy import check_policy, effective_policy
from ._primitive import world_call_p
from ._text import describe_changes

# Live entries in creation order, so that `advance()` validates a helper's entry before the
# entries of the functions that call it.
_live_lock = threading.Lock()
_live: dict[int, weakref.ref] = {}
_entry_ids = itertools.count()
# Input signatures kept per wrapped function (oldest dropped first), so that calls with ever-new
# shapes cannot grow memory without bound (issue #7, memory).
_MAX_ENTRIES = 512
# Traces of one re-trace, at most, while other threads keep changing what it depends on. A function
# that changes its own dependencies while being traced (a global counter it increments) is traced
# this many times, and then re-traced by every advance, as before.
_TRACE_ATTEMPTS = 3


class EntryKey(NamedTuple):
    """What one cache entry of a wrapped function is for (its input signature)."""

    in_tree: Any
    avals: tuple
    static: tuple
    static_types: tuple
    config: tuple
    out_of_key_config: tuple


class _Entry(_validity.Source):
    """One input signature of one wrapped function.

    The validity of its trace (current, re-stamped, pending, frozen, retired) is the state of its
    root closure, kept and changed by `_validity` alone; `pending` and `validated_epoch` are
    read-only views of it.
    """

    __slots__ = ("owner", "trace_fn", "skeleton", "closure", "record", "nested", "lock",
                 "tracing", "retraced_because", "previous", "__weakref__")

    def __init__(self, owner: Wrapped, trace_fn: Callable[[], tuple], skeleton: tuple = ()):
        self.owner = owner
        self.trace_fn = trace_fn
        # The call's arguments with every array leaf replaced by its aval: static arguments and
        # the objects of argument pytrees (their classes, static fields). The record walks it, so
        # a model passed as an argument is tracked like code the function names (issue #11).
        self.skeleton = skeleton
        self.closure: OpaqueClosure | None = None
        self.record: DependencyRecord | None = None
        self.nested: tuple[OpaqueClosure, ...] = ()
        self.lock = threading.RLock()
        self.tracing = False
        # (epoch, changes) of the last re-trace caused by a change, for `jaxworld.explain`.
        self.retraced_because: tuple[int, list[Change]] | None = None
        # The closure the last re-trace replaced, kept until the next advance: a computation
        # pinned to that older world (another thread advanced while it ran) still gets it.
        self.previous: OpaqueClosure | None = None
        with _live_lock:
            _live[next(_entry_ids)] = weakref.ref(self)

    @property
    def pending(self) -> tuple[int, list[Change]] | None:
        """``(epoch, changes)`` while the trace is stale (awaiting a re-trace), else None."""
        return _validity.pending(self.closure)

    @property
    def validated_epoch(self) -> int:
        return _validity.validated_epoch(self.closure)

    # -- the call path -----------------------------------------------------------------------
    def current(self) -> OpaqueClosure:
        closure = self.closure
        if closure is not None and _validity.is_current(closure):
            return closure
        # A trace may follow: check that the world is consistent first (`_epoch.sync`), and keep
        # advance() from publishing a new world until it is done (issue #12).
        with _epoch.tracing(sync_first=closure is None
                            or _validity.pending(closure) is not None):
            return self._current()

    def _current(self) -> OpaqueClosure:
        with self.lock:
            if self.tracing:
                raise RecursionError(
                    f"jaxworld.wrap: {self.owner.__name__} calls itself (with the same input "
                    "signature) while it is being traced. A wrapped function cannot recurse "
                    "through Python; express the recursion with jax.lax.while_loop / fori_loop / "
                    "scan, or call the unwrapped function (`.__wrapped__`) recursively.")
            e = _epoch.epoch()
            closure = self.closure
            if closure is None:
                return self._retrace(e)
            if _validity.is_current_at(closure, e):
                return closure
            found_here = _validity.pending(closure) is None
            changes = self._changes(e)
            if not changes:
                _validity.restamp(closure, e)
                _stats.count("restamps", self.owner)
                return closure
            if found_here:
                # This trace reached the function before the advance under way did: that advance
                # will find the entry up to date, so it must learn here that a `jax.jit` may
                # still hold the old closure.
                _epoch.note_stale(closure)
            policy = effective_policy(self.owner._policy)
            what = describe_changes(changes)
            if policy == "frozen":
                _validity.freeze(closure)
                return closure
            if policy == "error":
                raise StaleClosureError(
                    f"jaxworld: {self.owner.__name__} was traced at epoch {closure.epoch} and its "
                    f"dependencies changed since (now epoch {e}):\n{what}\n"
                    "The stale-closure policy is 'error'. Re-trace on purpose with "
                    "`with jaxworld.policy('retrace'):` around the call, or keep the old world "
                    "with `with jaxworld.policy('frozen'):` (a block wins over the policy the "
                    "function was wrapped with).")
            if policy == "warn":
                warnings.warn(
                    f"jaxworld: re-tracing {self.owner.__name__} at epoch {e} because its "
                    f"dependencies changed:\n{what}\nTo re-trace without this warning, call it "
                    "inside `with jaxworld.policy('retrace'):`.", StaleClosureWarning,
                    stacklevel=user_stacklevel())
            self.retraced_because = (e, changes)
            return self._retrace(e)

    def _changes(self, e: int) -> list[Change]:
        pending = _validity.pending(self.closure)
        if pending is not None:
            return pending[1]
        _stats.count("validations", self.owner)
        changes = list(self.record.changes()) if self.record is not None else []
        for nested in self.nested:
            entry = nested._entry
            if entry is None:
                continue
            nested_changes = entry.validate(e) or (
                [] if entry.closure is nested else
                [Change(f"wrapped helper {entry.owner.__name__}", "old trace", "re-traced", None)])
            if nested_changes:
                changes.append(Change(
                    f"wrapped helper {entry.owner.__name__}",
                    f"traced at epoch {nested.epoch}",
                    "; ".join(c.what for c in nested_changes), None))
        return changes

    def validate(self, e: int) -> list[Change]:
        """Check this entry for epoch `e` (once per epoch); returns the changes found."""
        with self.lock:
            closure = self.closure
            if closure is None or self.tracing:
                return []
            was_stale = _validity.pending(closure) is not None
            was_frozen = _validity.is_frozen(closure)
            changes = self._validate(e, closure)
            if changes and (not was_stale or (was_frozen and not _validity.is_frozen(closure))):
                # Newly stale (or thawed): a `jax.jit` may hold the old closure.
                _epoch.note_stale(closure)
            return changes

    def _validate(self, e: int, closure: OpaqueClosure) -> list[Change]:
        """`validate` minus the bookkeeping for `jax.jit` (called with the lock held)."""
        previous = self.previous
        if previous is not None and _validity.outlived(previous, e):
            self.previous = None  # an advance has completed since it was replaced
        if _validity.is_frozen(closure) and effective_policy(self.owner._policy) != "frozen":
            # Frozen under an earlier policy: this advance re-applies the policy in force.
            _validity.thaw(closure, drop_pending=True)
        pending = _validity.pending(closure)
        if pending is not None:
            return pending[1]  # already stale: re-traced on next use
        if _validity.validated_epoch(closure) == e or _validity.valid_through(closure) >= e:
            return []
        _validity.mark_validated(closure, e)
        # 'frozen' lasts until the next advance re-applies the policy
        _validity.thaw(closure, drop_pending=False)
        changes = self._changes(e)
        if changes:
            _validity.mark_pending(closure, e, changes)
        else:
            _validity.restamp(closure, e)
            _stats.count("restamps", self.owner)
        return changes

    def _retrace(self, e: int) -> OpaqueClosure:
        self.tracing = True
        try:
            roots = (("arguments", self.skeleton),) if self.skeleton else ()
            # After a change, `advance()` has already walked the new world to find it: that
            # walk's record is used (checked after the trace like a fresh one).
            record = self.record.take_successor() if self.record is not None else None
            for attempt in range(_TRACE_ATTEMPTS):
                if record is None:
                    record = DependencyRecord.capture(self.owner.__wrapped__, roots=roots)
                if self.closure is not None:
                    # A re-trace after a change: JAX's own caches may hold traces of plain
                    # `jax.jit` helpers and control-flow bodies that read what changed.
                    _caches.evict_reached(record.user_callables())
                with _epoch.retracing(e):
                    jaxpr, in_tree, out_tree = self.trace_fn()
                _stats.count("traces", self.owner)
                reused = (reused_user_traces(self.closure.jaxpr, jaxpr)
                          if self.closure is not None else [])
                if reused:
                    # JAX's caches handed back traces of user code from before the change, keyed
                    # on what the change did not touch (a library's `jax.jit` with the user's
                    # function as a static argument: diffrax, optimistix, lineax). Only a new
                    # cache key for every `jax.jit` reaches them: the global fallback.
                    _epoch.invalidate_everything(
                        "JAX's caches handed back traces made before the change, of user code "
                        f"inside {', '.join(sorted(set(reused)))}")
                    with _epoch.retracing(e):
                        jaxpr, in_tree, out_tree = self.trace_fn()
                    _stats.count("traces", self.owner)
                # Another thread may have rebound what the trace read while it ran (a notebook
                # cell executing during a call): the trace could mix two versions of the code.
                # Accept it only if everything it depends on is as it was before. (A record
                # with unverifiable values reports a change at every check, so it cannot tell:
                # trace once, as it re-traces at every advance anyway.)
                if not record.verifiable or not record.changes():
                    break
                if attempt + 1 < _TRACE_ATTEMPTS:  # else keep it: the next advance re-traces
                    record = record.take_successor()
            # User code that ran but that the walk did not reach (issue #11).
            record.cover(jaxpr, _TRACE_BOUNDARY)
        finally:
            self.tracing = False
        closure = OpaqueClosure(jaxpr, origin=self.owner.__wrapped__, epoch=e, entry=self,
                                in_tree=in_tree, out_tree=out_tree,
                                name=self.owner.__qualname__)
        # Publish all at once: a KeyboardInterrupt above leaves the old state untouched.
        self.record, self.nested = record, _nested_roots(jaxpr)
        previous, self.closure = self.closure, closure  # the new root is current, not pending
        if previous is not None:
            retire(previous)
            self.previous = previous
        return closure

    def at(self, pin: _epoch.Pin, trace) -> OpaqueClosure:
        """The closure for a computation pinned to the world `pin.epoch` (`_epoch.pinned`)."""
        for closure in (self.closure, self.previous):
            if closure is not None and _validity.valid_at(closure, pin.epoch):
                if (pin.epoch < _epoch.epoch() and not _validity.valid_at(closure, _epoch.epoch())
                        and _epoch.cached_by_jax_in_this_generation(trace)):
                    break  # an old world's closure must not land in a new generation's cache
                return closure
        closure = self.current()
        if _validity.valid_at(closure, pin.epoch) or pin.move_to(_epoch.epoch(),
                                                                _validity.valid_at):
            return closure
        stale = ", ".join(sorted({c.name for c in pin.used.values()
                                  if not _validity.valid_at(c, _epoch.epoch())}))
        raise WorldChangeError(
            f"jaxworld: {self.owner.__name__} was called inside a computation that runs in the "
            f"world of epoch {pin.epoch}, but the world advanced to epoch {_epoch.epoch()} while "
            f"it ran (another thread advanced, or a change was found), and there is no trace of "
            f"{self.owner.__name__} for epoch {pin.epoch}. The closures the computation already "
            f"used are not valid in the new world: {stale}.\n"
            "Worlds are never mixed. Run the computation again: it will run wholly in the new "
            "world.")


def _nested_roots(jaxpr: ClosedJaxpr | Jaxpr) -> tuple[OpaqueClosure, ...]:
    """Root closures of wrapped helpers called (at any depth) by `jaxpr`."""
    found: dict[int, OpaqueClosure] = {}

    def visit(j: Jaxpr):
        for eqn in j.eqns:
            if eqn.primitive is world_call_p:
                closure = eqn.params["closure"]
                root = closure._root or closure
                found.setdefault(id(root), root)
            for sub in jaxprs_in_params(eqn.params):
                visit(sub)

    visit(getattr(jaxpr, "jaxpr", jaxpr))
    return tuple(found.values())


def validate_all(new_epoch: int) -> None:
    """Validate every live entry for `new_epoch` (each notes what it finds stale)."""
    with _live_lock:
        refs = list(_live.items())
    dead = []
    for key, ref in refs:
        entry = ref()
        if entry is None:
            dead.append(key)
            continue
        entry.validate(new_epoch)
    if dead:
        with _live_lock:
            for key in dead:
                _live.pop(key, None)


_epoch.register_validator(validate_all)


def live_records_changed() -> bool:
    """Whether some live entry's record no longer holds (read-only; `_epoch.sync`'s probe).

    Entries already known stale or frozen are skipped (an advance would find nothing new in
    them), and so are records that cannot tell a change (they report one at every check).
    """
    with _live_lock:
        refs = list(_live.values())
    for ref in refs:
        entry = ref()
        if entry is None:
            continue
        closure, record = entry.closure, entry.record
        if (closure is None or record is None or _validity.pending(closure) is not None
                or _validity.is_frozen(closure) or entry.tracing or not record.verifiable):
            continue
        if record.changes():
            return True
    return False


_epoch.register_probe(live_records_changed)


class Wrapped:
    """A function wrapped by `jaxworld.wrap`. Call it like the original."""

    def __init__(self, fun: Callable, static_argnums: Sequence[int],
                 static_argnames: Sequence[str], policy: str | None,
                 static_scalars: bool = False):
        functools.update_wrapper(self, fun)
        self.__wrapped__ = fun
        if not isinstance(getattr(self, "__name__", None), str):
            from ._closure import _callable_name
            self.__name__ = _callable_name(fun)
        if not isinstance(getattr(self, "__qualname__", None), str):
            self.__qualname__ = self.__name__
        try:
            signature = inspect.signature(fun)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            _check_static_argnums(signature, static_argnums, self.__name__)
            static_argnums, static_argnames = infer_argnums_and_argnames(
                signature, static_argnums, static_argnames)
        self._static_argnums = tuple(sorted(set(static_argnums)))
        self._static_argnames = frozenset(static_argnames)
        self._policy = policy
        self._static_scalars = static_scalars
        self._entries: dict[Any, _Entry] = {}
        self._entries_lock = threading.Lock()
        # The eager fast path (issue #14): `jax.jit`'s C++ dispatch of the traced call.
        self._eager = jax.jit(self._run_eager, static_argnums=0)
        self._eager_plain = (jax.jit(self._run_eager_plain)
                             if not (self._static_argnums or self._static_argnames
                                     or static_scalars) else None)
        self._bound: dict[int, Wrapped] = {}  # bound methods of non-pytree instances

    def __repr__(self) -> str:
        return f"<jaxworld.wrap of {self.__wrapped__!r}>"

    def __get__(self, instance, owner=None):
        # Decorating a method (issue #14). A pytree `self` (an equinox or flax nnx Module) is an
        # argument like any other: its arrays traced, its other fields static. Any other `self`
        # is part of the origin — a wrapped bound method, one per instance — so its dependency
        # record follows its fields and its class, as for `wrap(obj.method)`.
        if instance is None:
            return self
        return bind_method(self, instance)

    def _split(self, args: tuple, kwargs: dict):
        static = []
        dyn_args = []
        for i, a in enumerate(args):
            if i in self._static_argnums or i - len(args) in self._static_argnums:
                static.append((i, a))
            else:
                dyn_args.append(a)
        dyn_kwargs = {}
        for k, v in kwargs.items():
            if k in self._static_argnames:
                static.append((k, v))
            else:
                dyn_kwargs[k] = v
        # Every unhashable static argument in one message (as chex collects every mismatch).
        unhashable = []
        for where, value in static:
            try:
                hash(value)
            except TypeError:
                label = f"args[{where}]" if isinstance(where, int) else f"kwargs[{where!r}]"
                unhashable.append(f"  {label}: {type(value).__name__} {value!r:.60}")
        if unhashable:
            what = ("an unhashable static argument" if len(unhashable) == 1
                    else f"{len(unhashable)} unhashable static arguments")
            raise TypeError(
                f"jaxworld.wrap: {self.__name__} got {what}:\n"
                + "\n".join(unhashable) + "\n"
                "Expected hashable values (static arguments key the trace cache). Make the "
                "argument non-static: only its array leaves are traced, every other leaf "
                "(functions, strings, objects) is static on its own, held by equality or identity "
                "(an equinox Module works as is); or pass a hashable value (a tuple instead of a "
                "list).")
        return tuple(static), tuple(dyn_args), dyn_kwargs

    def _lookup(self, args: tuple, kwargs: dict) -> tuple[_Entry, list]:
        """The cache entry for this call's input signature, and the flat dynamic arguments."""
        static, dyn_args, dyn_kwargs = self._split(args, kwargs)
        # Array leaves are traced; every other leaf is static, inside `in_tree` (`_filter.py`).
        leaves, in_tree = filter_leaves((dyn_args, dyn_kwargs), self._static_scalars)
        avals = abstractify_all(leaves, (dyn_args, dyn_kwargs), self.__name__,
                                self._static_scalars)
        # Like `jax.jit`: static values by type as well as by equality (1 and True are two
        # entries), and the trace configuration in force here, context managers included (a
        # trace made under `jax.enable_x64()` is not reused outside it), plus the flags that JAX
        # leaves out of its own key (issue #11).
        key = EntryKey(in_tree, avals, static, tuple(type(v) for _, v in static),
                       jax_trace_config_values(), out_of_key_config())
        entry = self._entries.get(key)
        if entry is None:
            with self._entries_lock:
                entry = self._entries.get(key)
                if entry is None:
                    # The entry re-traces from avals, never from this call's values: keeping
                    # `args` would hold the first call's arrays (or tracers) alive (issue #7).
                    args, kwargs = _skeleton(args, kwargs, static, in_tree, avals)
                    entry = _Entry(self, functools.partial(
                        self._trace, args, kwargs, static, in_tree, avals), (args, kwargs))
                    if len(self._entries) >= _MAX_ENTRIES:
                        # Bounded like jax.jit's caches: drop the oldest signature (its closures
                        # stay valid wherever they are still used; a new call re-traces it).
                        self._entries.pop(next(iter(self._entries)))
                    self._entries[key] = entry
        return entry, leaves

    def __call__(self, *args, **kwargs):
        if is_eval_trace(current_trace()) and not jax_config.jax_disable_jit:
            # An eager call: `jax.jit`'s C++ dispatch instead of a Python lookup per call. The jit
            # traces `_run_eager`, which takes the traced path below; a relevant `advance()`
            # changes every `jax.jit` cache key, so it re-traces in the new world.
            try:
                if self._eager_plain is not None and all_traced(
                        tree_util.tree_leaves((args, kwargs))):
                    return self._eager_plain(*args, **kwargs)  # only arrays: nothing to filter
                static, dyn_args, dyn_kwargs = self._split(args, kwargs)
                leaves, in_tree = filter_leaves((dyn_args, dyn_kwargs), self._static_scalars)
                return self._eager((len(args), in_tree, static), *leaves)
            except (TypeError, OverflowError) as jit_error:
                error = jit_error
            # `jax.jit`'s own message for a leaf it cannot take (an object-dtype array, an int
            # out of range) names jaxworld's internals: say it in `wrap`'s words (or, when the
            # error came from the function itself, re-raise it as it was).
            self._lookup(args, kwargs)
            raise error
        return self._call(args, kwargs)

    def _run_eager_plain(self, *args, **kwargs):
        _stats.count("compilations", self)  # jax.jit traces this exactly when it compiles
        return mark_static(self._inline(args, kwargs))  # jax.jit takes no non-array outputs

    def _run_eager(self, key, *leaves):
        _stats.count("compilations", self)
        n_args, in_tree, static = key
        dyn_args, dyn_kwargs = tree_util.tree_unflatten(in_tree, leaves)
        args, kwargs = _merge_static(n_args, dyn_args, dyn_kwargs, static)
        return mark_static(self._inline(args, kwargs))

    def _inline(self, args, kwargs):
        """The current closure's body, evaluated into the eager path's `jax.jit` trace.

        What `world_call`'s impl would run (`OpaqueClosure.executable`), without a `world_call`
        equation: JAX's trace caches keep the jaxpr they traced, weakly keyed by this wrapped
        function's own jit, and a `world_call` in it would hold the closure, its entry and so
        this wrapped function alive for as long as JAX's caches live (tests/test_memory.py).
        """
        entry, leaves = self._lookup(args, kwargs)
        trace = current_trace()
        while True:
            closure = entry.current()
            # The jaxpr is inlined into this `jax.jit`'s trace: no lowering rule will see it, so
            # it must not be a closure whose holders an advance has already evicted. If it is,
            # that advance is about to publish its epoch: wait for it, and take the closure again.
            if _caches.note_use(closure, trace):  # this `jax.jit` holds it, inlined
                break
            _epoch.settle()
        jaxpr = closure.jaxpr
        outs = eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *leaves)
        return tree_util.tree_unflatten(closure._out_tree, outs)

    def _call(self, args, kwargs):
        entry, leaves = self._lookup(args, kwargs)
        previous = entry.closure
        trace = current_trace()
        eager = is_eval_trace(trace)
        try:
            if eager:
                closure = entry.current()
            else:
                # Every wrapped call of one computation runs in its world (issue #12).
                pin = _epoch.pinned(trace)
                closure = entry.at(pin, trace)
        except _ClosedOverTracers as closed:
            # `fun` closes over tracers of an enclosing transformation: the trace belongs to this
            # call alone. Pass the captured tracers as leading inputs and cache nothing.
            closure = OpaqueClosure(
                ClosedJaxpr(convert_constvars_jaxpr(closed.jaxpr), ()),
                origin=self.__wrapped__, in_tree=closed.in_tree, out_tree=closed.out_tree,
                name=self.__qualname__, ephemeral=True)
            _stats.count("traces", self)
            outs = world_call_p.bind(*closed.consts, *leaves, closure=closure)
            return tree_util.tree_unflatten(closure._out_tree, outs)
        if not eager:
            if previous is not None and closure is not previous and previous._users:
                _check_no_live_user(previous, closure, trace)
            closure._users.add(trace)
            pin.used[id(closure)] = closure
            _caches.note_use(closure, trace)
        outs = world_call_p.bind(*leaves, closure=closure)
        return tree_util.tree_unflatten(closure._out_tree, outs)

    def _trace(self, args, kwargs, static, in_tree, avals):
        """Trace the origin afresh for one signature: (ClosedJaxpr, in_tree, out_tree)."""
        fun = self.__wrapped__
        static_pos = {w: v for w, v in static if isinstance(w, int)}
        static_kw = {w: v for w, v in static if not isinstance(w, int)}
        n_args = len(args)
        out_trees = []

        def flat_fun(*flat):
            dyn_args, dyn_kwargs = tree_util.tree_unflatten(in_tree, flat)
            dyn_iter = iter(dyn_args)
            full_args = [static_pos[i] if i in static_pos else next(dyn_iter)
                         for i in range(n_args)]
            out = fun(*full_args, **dyn_kwargs, **static_kw)
            out_flat, out_tree = filter_leaves(out)  # non-array outputs are static too
            out_trees.append(out_tree)
            return out_flat

        try:
            debug = debug_info("jaxworld.wrap", fun, args, kwargs,
                                        static_argnums=self._static_argnums,
                                        static_argnames=tuple(self._static_argnames))
            if len(debug.arg_names or ()) != len(avals):
                raise ValueError
        except Exception:  # exotic signatures: fall back to positional names
            debug = debug_info("jaxworld.wrap", flat_fun, avals, {})
        jaxpr, _, consts = trace_to_jaxpr_dynamic(wrap_init(flat_fun, debug_info=debug),
                                                     list(avals))
        if any(isinstance(c, Tracer) for c in consts):
            raise _ClosedOverTracers(jaxpr, consts, in_tree, out_trees[0])
        # JAX keeps a NumPy global the function read as a *view* of the user's array: mutating it
        # in place would leak into this (old world's) trace the next time it is lowered. Snapshot
        # it; the dependency record sees the mutation at the next advance (issue #7 fuzzing).
        consts = [c.copy() if isinstance(c, np.ndarray) else c for c in consts]
        return _snapshot_constants(ClosedJaxpr(jaxpr, consts)), in_tree, out_trees[0]


def _snapshot_constants(closed: ClosedJaxpr) -> ClosedJaxpr:
    """`closed` with every NumPy constant of its sub-jaxprs copied (issue #11).

    A `jax.jit` helper's jaxpr keeps a NumPy global it read as a view, like the top level does:
    after an in-place edit, the value and the gradient of one call would come from different
    arrays. Rebuilt only where a sub-jaxpr holds one.
    """
    new_eqns, changed = [], False
    for eqn in closed.jaxpr.eqns:
        params = {}
        for name, value in eqn.params.items():
            if isinstance(value, ClosedJaxpr):
                new = _snapshot_closed(value)
            elif isinstance(value, tuple) and value and all(
                    isinstance(v, ClosedJaxpr) for v in value):
                new = tuple(_snapshot_closed(v) for v in value)
            else:
                continue
            if new is not value and new != value:
                params[name] = new
        if params:
            changed = True
            eqn = eqn.replace(params={**eqn.params, **params})
        new_eqns.append(eqn)
    if not changed:
        return closed
    return ClosedJaxpr(closed.jaxpr.replace(eqns=new_eqns), closed.consts)


def _snapshot_closed(closed: ClosedJaxpr) -> ClosedJaxpr:
    inner = _snapshot_constants(closed)
    if not any(isinstance(c, np.ndarray) for c in inner.consts):
        return inner
    return ClosedJaxpr(inner.jaxpr, [c.copy() if isinstance(c, np.ndarray) else c
                                          for c in inner.consts])


# The frame that starts every trace of a wrapped function (`Wrapped._trace`'s `flat_fun`): frames
# inside it ran during the trace, frames outside it are the caller's (`DependencyRecord.cover`).
_TRACE_BOUNDARY = next(c for c in Wrapped._trace.__code__.co_consts
                       if isinstance(c, types.CodeType) and c.co_name == "flat_fun")


def _skeleton(args: tuple, kwargs: dict, static: tuple, in_tree, avals) -> tuple[tuple, dict]:
    """`args` / `kwargs` with every array leaf replaced by its aval (static values and static
    leaves kept)."""
    try:
        dyn_args, dyn_kwargs = tree_util.tree_unflatten(in_tree, list(avals))
    except Exception as e:
        raise TypeError(
            f"jaxworld.wrap: the arguments' pytree could not be rebuilt with abstract leaves: a "
            f"pytree node's unflatten function raised {type(e).__name__}: {e}\n"
            "jaxworld keeps each input signature's arguments with every array leaf replaced by "
            "its abstract value (a ShapedArray), so it calls the unflatten functions of your "
            "pytree classes on non-array leaves, as JAX itself may (JAX's pytree contract: "
            "unflatten must not compute on its children, see 'Custom pytrees and "
            "initialization with unexpected values' in JAX's pytree documentation). Expected "
            "an unflatten that stores its children as given; got one that computes on them.\n"
            "Fix: store the children unchanged in unflatten, and compute from them in a method "
            "or a property of the class.") from e
    return _merge_static(len(args), dyn_args, dyn_kwargs, static)


def _merge_static(n_args: int, dyn_args, dyn_kwargs, static: tuple) -> tuple[tuple, dict]:
    """The full ``(args, kwargs)`` of a call from its dynamic part and its static arguments."""
    static_pos = {w: v for w, v in static if isinstance(w, int)}
    dyn_iter = iter(dyn_args)
    full = tuple(static_pos[i] if i in static_pos else next(dyn_iter) for i in range(n_args))
    return full, {**dyn_kwargs, **{w: v for w, v in static if not isinstance(w, int)}}


def bind_method(wrapped: Wrapped, instance: Any) -> Callable:
    """`wrapped` as a method of `instance` (`Wrapped.__get__`)."""
    if not tree_util.treedef_is_leaf(tree_util.tree_structure(instance)):
        return functools.partial(wrapped, instance)  # a pytree: traced and filtered like args
    bound = wrapped._bound.get(id(instance))
    if bound is not None and bound.__wrapped__.__self__ is instance:
        return bound
    # Positions in static_argnums count `self` (as in `jax.jit` on a method); the bound method
    # does not take it.
    argnums = tuple(i - 1 if i > 0 else i for i in wrapped._static_argnums if i != 0)
    bound = Wrapped(types.MethodType(wrapped.__wrapped__, instance), argnums,
                    tuple(wrapped._static_argnames), wrapped._policy, wrapped._static_scalars)
    with wrapped._entries_lock:
        # The bound method holds its instance, as `jax.jit`'s cache holds a static argument:
        # bounded like the entries, oldest instance dropped first (a later call re-traces it).
        if len(wrapped._bound) >= _MAX_ENTRIES:
            wrapped._bound.pop(next(iter(wrapped._bound)))
        wrapped._bound[id(instance)] = bound
    return bound


def _check_static_argnums(signature: inspect.Signature, static_argnums, name: str) -> None:
    """Positions past the end of `fun`'s positional parameters are a mistake (as in `jax.jit`)."""
    kinds = [p.kind for p in signature.parameters.values()]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return
    n = sum(k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for k in kinds)
    bad = [i for i in static_argnums if not -n <= i < n]
    if bad:
        raise ValueError(
            f"jaxworld.wrap: static_argnums={tuple(static_argnums)} of {name}, but {name} "
            f"accepts {n} positional argument(s) (valid positions: 0..{n - 1} or -{n}..-1). "
            "Fix static_argnums, or use static_argnames= for keyword arguments.")


class _ClosedOverTracers(Exception):
    """Internal: the origin closed over tracers of an enclosing transformation."""

    def __init__(self, jaxpr, consts, in_tree, out_tree):
        self.jaxpr, self.consts, self.in_tree, self.out_tree = jaxpr, consts, in_tree, out_tree


def _check_no_live_user(previous: OpaqueClosure, new: OpaqueClosure, trace) -> None:
    if previous.out_avals == new.out_avals and previous._out_tree == new._out_tree:
        return
    for t in enclosing_traces(trace):
        if t in previous._users and t.is_valid():
            raise world_change_error(
                previous, new, "an enclosing trace already used the old closure and the "
                "re-trace changed its output structure, shape or dtype")


def wrap(fun: Callable | None = None, *, static_argnums: int | Sequence[int] = (),
         static_argnames: str | Sequence[str] = (), policy: str | None = None,
         static_scalars: bool = False):
    """Wrap `fun` so that its calls travel as one opaque `world_call` equation.

    The wrapped function behaves exactly like `fun` under every JAX transformation (jit, grad,
    vmap, jvp, vjp, linearize, hessian, checkpoint, scan, ...), but its traced body stays opaque and
    remembers where it came from, so that after `jaxworld.advance()` (or a notebook cell) it is
    re-traced from `fun` if — and only if — something it depends on changed.

    Args:
      fun: any callable: a function, lambda, bound method, `functools.partial`, or a callable
        object such as an equinox Module. Omit it to use `wrap` as a decorator with arguments.
      static_argnums: positions of arguments to hold static whole (they must be hashable).
        Rarely needed: any pytree can be passed, and its non-array leaves are static.
      static_argnames: names of such arguments.
      policy: what to do when the trace is stale: ``"retrace"``, ``"warn"``, ``"error"`` or
        ``"frozen"`` (default: the policy in force, see `jaxworld.set_policy`).
      static_scalars: also hold Python scalar leaves (`bool`, `int`, `float`, `complex`)
        static, as `equinox.filter_jit` does (default: traced, as `jax.jit` does). Array leaves
        are always traced and every other leaf (functions, strings, objects) is always static.

    Returns:
      The wrapped function (with `fun`'s name, docstring and ``__wrapped__``).

    Raises:
      TypeError: `fun` is not callable.
      ValueError: `static_argnums` names a position `fun` does not have.
      TypeError: (when called) an argument leaf looks like an array but is not a valid JAX value,
        or a static argument is unhashable: every such leaf is named in one message.
      StaleClosureError: under the 'error' stale-closure policy, when a call finds the trace's
        dependencies changed since (`jaxworld.policy`).
      WorldChangeError: when a re-trace changes a signature that a live enclosing trace already
        used.

    Example:
      >>> import jax, jax.numpy as jnp, jaxworld
      >>> @jaxworld.wrap
      ... def f(x):
      ...     return jnp.sum(jnp.sin(x) ** 2)
      >>> h = jax.hessian(f)(jnp.ones(3))
      >>> [e.primitive.name for e in jax.make_jaxpr(f)(jnp.ones(3)).eqns]
      ['world_call']
    """
    if policy is not None:
        check_policy(policy, "jaxworld.wrap")
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)
    if isinstance(static_argnames, str):
        static_argnames = (static_argnames,)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in static_argnums):
        raise TypeError(
            f"jaxworld.wrap: static_argnums must be an int or a sequence of ints (argument "
            f"positions), got {static_argnums!r:.60}. Use static_argnames= for names.")

    def decorate(f):
        if not callable(f):
            raise TypeError(
                f"jaxworld.wrap: expected a callable (a function, lambda, bound method, "
                f"functools.partial or an object with __call__), got {type(f).__name__} "
                f"{f!r:.60}. Usage: `jaxworld.wrap(f)` or `@jaxworld.wrap`.")
        return Wrapped(f, tuple(static_argnums), tuple(static_argnames), policy, static_scalars)

    if fun is None:
        return decorate
    return decorate(fun)
