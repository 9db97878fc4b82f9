"""Stability checks run in every scenario (issue #15, item 4), and the prepared operator they use.

- `Counters`: JAX's own trace and compile events (``jax.monitoring``) and jaxworld's traces, so a
  steady-state call can be shown to re-trace and re-compile nothing;
- `dtype_mismatches`: result dtypes *and weak types* leaf by leaf against plain JAX's;
- `Snapshot`: the inputs before a call, to show they are intact afterwards (not mutated in place,
  not donated, same pytree structure);
- `PreparedOperator` / `prepare`: the operator under test bound to the function and input
  signature it was prepared for; reusing it for another function or signature raises
  `PreparationMismatchError` (DifferentiationInterfaceTest's "preparation mismatch" check).
  `jax.jit` would silently re-trace for a new signature and cannot be handed another function;
  a harness preparation is meant for one case, so a mismatch is a bug in the caller's test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax import tree_util

from .. import _stats

# JAX records these durations for every jaxpr trace of a `jax.jit` and for every XLA compile
# (jax/_src/dispatch.py, JAXPR_TRACE_EVENT / BACKEND_COMPILE_EVENT; checked on jax 0.10.2).
_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

_lock = threading.Lock()
_totals = {"jax_traces": 0, "compiles": 0, "compile_seconds": 0.0, "trace_seconds": 0.0}
_installed = False


def _listener(event: str, duration: float, **_: Any) -> None:
    if event == _TRACE_EVENT:
        with _lock:
            _totals["jax_traces"] += 1
            _totals["trace_seconds"] += duration
    elif event == _COMPILE_EVENT:
        with _lock:
            _totals["compiles"] += 1
            _totals["compile_seconds"] += duration


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    # One process-wide listener, installed on first use: it only adds to four numbers.
    jax.monitoring.register_event_duration_secs_listener(_listener)


class Counters:
    """Counts of traces and compiles between `start()` and `stop()` (process-wide).

    Attributes (after `stop`): ``jax_traces`` (jaxprs JAX traced for `jax.jit`), ``compiles``
    (XLA compilations), ``compile_seconds``, ``trace_seconds`` and ``jaxworld_traces``
    (`jaxworld.stats()["traces"]`: Python functions jaxworld traced).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxworld.testing._stability import Counters
      >>> f = jax.jit(lambda x: x + 1)
      >>> with Counters() as first:
      ...     _ = f(jnp.ones(2))
      >>> with Counters() as again:
      ...     _ = f(jnp.ones(2))
      >>> first.compiles, again.compiles, again.jax_traces
      (1, 0, 0)
    """

    def __init__(self) -> None:
        _install()
        self.jax_traces = self.compiles = self.jaxworld_traces = 0
        self.compile_seconds = self.trace_seconds = 0.0
        self._start: dict | None = None

    def start(self) -> Counters:
        with _lock:
            self._start = dict(_totals)
        self._start["jaxworld_traces"] = _stats.stats()["traces"]
        return self

    def stop(self) -> Counters:
        assert self._start is not None, "Counters.stop() before start()"
        with _lock:
            now = dict(_totals)
        self.jax_traces = now["jax_traces"] - self._start["jax_traces"]
        self.compiles = now["compiles"] - self._start["compiles"]
        self.compile_seconds = now["compile_seconds"] - self._start["compile_seconds"]
        self.trace_seconds = now["trace_seconds"] - self._start["trace_seconds"]
        self.jaxworld_traces = _stats.stats()["traces"] - self._start["jaxworld_traces"]
        return self

    def __enter__(self) -> Counters:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def traces(self) -> int:
        return self.jax_traces + self.jaxworld_traces

    def describe(self) -> str:
        return (f"{self.jax_traces} JAX trace(s), {self.jaxworld_traces} jaxworld trace(s), "
                f"{self.compiles} compile(s)")


# ------------------------------------------------------------------------------------------------
# Result dtypes and weak types.


def _dtype_of(x: Any) -> tuple[str, bool]:
    aval = jax.typeof(x) if hasattr(jax, "typeof") else jax.core.get_aval(x)
    return str(aval.dtype), bool(getattr(aval, "weak_type", False))


def dtype_mismatches(actual: Any, expected: Any) -> list[str]:
    """Leaves whose dtype or weak type differs, named by key path (empty: all equal).

    Example:
      >>> import jax.numpy as jnp
      >>> dtype_mismatches({"a": jnp.float32(1)}, {"a": jnp.asarray(1.0)})
      ["['a']: got float32, plain JAX float32 (weak)"]
    """
    a_leaves, a_tree = tree_util.tree_flatten_with_path(actual)
    e_leaves, e_tree = tree_util.tree_flatten(expected)
    if tree_util.tree_structure(actual) != e_tree:
        return [f"pytree structure: got {tree_util.tree_structure(actual)}, plain JAX {e_tree}"]
    out = []
    for (path, a), e in zip(a_leaves, e_leaves, strict=True):
        got, want = _dtype_of(a), _dtype_of(e)
        if got != want:
            out.append(f"{tree_util.keystr(path) or 'result'}: got {_type_text(got)}, plain JAX "
                       f"{_type_text(want)}")
    return out


def _type_text(t: tuple[str, bool]) -> str:
    return t[0] + (" (weak)" if t[1] else "")


# ------------------------------------------------------------------------------------------------
# Inputs intact.


class Snapshot:
    """The inputs as they were: pytree structure, leaf values (copied) and leaf identities.

    `changes(args)` lists what differs now: a leaf mutated in place (NumPy arrays, or any leaf
    with a writable buffer), a JAX array deleted (donated), a container changed.
    """

    def __init__(self, args: tuple) -> None:
        self.tree = tree_util.tree_structure(args)
        leaves = tree_util.tree_leaves_with_path(args)
        self.paths = [tree_util.keystr(p) for p, _ in leaves]
        self.values = [_copy(x) for _, x in leaves]

    def changes(self, args: tuple) -> list[str]:
        tree = tree_util.tree_structure(args)
        if tree != self.tree:
            return [f"the arguments' pytree structure changed from {self.tree} to {tree}"]
        out = []
        for path, before, (_, now) in zip(self.paths, self.values,
                                          tree_util.tree_leaves_with_path(args), strict=True):
            where = f"argument leaf args{path}"
            if isinstance(now, jax.Array) and now.is_deleted():
                out.append(f"{where} was deleted (donated to a computation)")
                continue
            if before is _UNCOPYABLE:
                continue
            now_value = _copy(now)
            if now_value is _UNCOPYABLE or not _same(before, now_value):
                out.append(f"{where} was changed in place: {_diff_text(before, now_value)}")
        return out


_UNCOPYABLE = object()


def _copy(x: Any) -> Any:
    if isinstance(x, jax.Array) and x.is_deleted():
        return _UNCOPYABLE
    try:
        return np.array(x, copy=True)
    except Exception:  # an opaque leaf (e.g. a PRNG key of a custom impl): not compared
        return _UNCOPYABLE


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.shape == b.shape and a.dtype == b.dtype
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _diff_text(before: np.ndarray, now: Any) -> str:
    if now is _UNCOPYABLE:
        return "it can no longer be read"
    if before.shape != now.shape or before.dtype != now.dtype:
        return f"{before.dtype}{list(before.shape)} became {now.dtype}{list(now.shape)}"
    if before.dtype.kind in "fciub":
        delta = np.abs(now.astype(np.complex128) - before.astype(np.complex128))
        return f"max abs change {float(np.max(delta)):.3g}"
    return "its value differs"


# ------------------------------------------------------------------------------------------------
# The prepared operator and the mismatch error.


class PreparationMismatchError(ValueError):
    """A prepared operator was called for another function or another input signature."""


def signature(args: tuple, static_argnums: tuple[int, ...] = ()) -> tuple:
    """What a preparation is valid for: pytree structure, per leaf shape/dtype/weak type, and the
    static values (like `jax.jit`'s cache key)."""
    dyn = tuple(a for i, a in enumerate(args) if i not in static_argnums)
    static = tuple((i, args[i]) for i in static_argnums)
    leaves, tree = tree_util.tree_flatten(dyn)
    avals = []
    for x in leaves:
        shape = tuple(np.shape(x))
        dtype, weak = _dtype_of(x) if not isinstance(x, np.ndarray) else (str(x.dtype), False)
        avals.append((shape, dtype, weak))
    return tree, tuple(avals), static


def signature_text(sig: tuple) -> str:
    tree, avals, static = sig
    leaves = ", ".join(f"{dtype}{list(shape)}{'(weak)' if weak else ''}"
                       for shape, dtype, weak in avals)
    text = f"({leaves})"
    if static:
        text += " static " + ", ".join(f"args[{i}]={v!r:.30}" for i, v in static)
    return text + f" as {tree}"


class PreparedOperator:
    """The operator of a scenario, prepared for one function and one input signature.

    Built by `prepare`. ``prepared(*args)`` evaluates it; ``prepared.call(fun, *args)`` also
    checks that `fun` is the function it was prepared for. Any other function, or arguments of
    another signature (pytree structure, shapes, dtypes, weak types, static values), raise
    `PreparationMismatchError` naming what was expected and what was given.

    Raises:
      PreparationMismatchError: (when called) the arguments are of another input signature than
        those it was prepared for, or `call` is given another function.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxworld.testing import Scenario, prepare
      >>> def f(x):
      ...     return jnp.sum(x ** 3)
      >>> hess = prepare(Scenario(f, (jnp.ones(2),), "hessian"))
      >>> hess(jnp.ones(2)).tolist()
      [[6.0, 0.0], [0.0, 6.0]]
    """

    def __init__(self, fun: Callable, operator: str, call: Callable[[tuple], Any], owner: Any,
                 args: tuple, static_argnums: tuple[int, ...] = ()) -> None:
        self.fun = fun
        self.operator = operator
        self.owner = owner  # what `jaxworld.stats` counts this operator's traces on
        self.static_argnums = static_argnums
        self.signature = signature(args, static_argnums)
        self._call = call

    def __call__(self, *args: Any) -> Any:
        got = signature(args, self.static_argnums)
        if got != self.signature:
            raise PreparationMismatchError(
                f"jaxworld.testing.prepare: this {self.operator!r} operator was prepared for "
                f"arguments {signature_text(self.signature)}, but it was called with "
                f"{signature_text(got)}. A preparation is valid for one input signature; "
                f"prepare again for these arguments: "
                f"jaxworld.testing.prepare(Scenario(f, args, {self.operator!r})).")
        return self._call(args)

    @property
    def unchecked(self) -> Callable[..., Any]:
        """The operator itself, without the signature check (for timing it)."""
        call = self._call
        return lambda *args: call(args)

    def call(self, fun: Callable, *args: Any) -> Any:
        """``self(*args)``, after checking that `fun` is the function this was prepared for."""
        if fun is not self.fun:
            raise PreparationMismatchError(
                f"jaxworld.testing.prepare: this {self.operator!r} operator was prepared for "
                f"function {_name(self.fun)} ({self.fun!r:.60}), but it was called for "
                f"{_name(fun)} ({fun!r:.60}). A preparation belongs to one function; prepare "
                f"one for this function: jaxworld.testing.prepare(Scenario({_name(fun)}, args, "
                f"{self.operator!r})).")
        return self(*args)

    def __repr__(self) -> str:
        return (f"<jaxworld.testing prepared {self.operator} of {_name(self.fun)} for "
                f"{signature_text(self.signature)}>")


def _name(fun: Any) -> str:
    return getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None) or type(
        fun).__name__


def other_signature(args: tuple, static_argnums: tuple[int, ...]) -> tuple:
    """`args` with the first argument's first leaf one element longer: another signature."""
    leaves, tree = tree_util.tree_flatten(args[0])
    if not leaves:
        return (*args, 0.0)  # no leaf to change: one argument more
    first = np.asarray(leaves[0])
    longer = (np.concatenate([first, first[:1]]) if first.ndim else np.stack([first, first]))
    leaves = [longer, *leaves[1:]]
    return (tree_util.tree_unflatten(tree, leaves), *args[1:])


def check_mismatch(prepared: PreparedOperator, args: tuple) -> list[str]:
    """Problems with the mismatch errors of `prepared` (empty: both raise clearly)."""
    problems = []
    from ._world import fresh_function

    def expect(what: str, needles: list[str], fn: Callable[[], Any]) -> None:
        try:
            fn()
        except PreparationMismatchError as e:
            missing = [n for n in needles if n not in str(e)]
            if missing:
                problems.append(f"reusing the preparation for {what} raised without naming "
                                f"{', '.join(missing)}: {e}")
        except Exception as e:  # noqa: BLE001 - any other error is the finding
            problems.append(f"reusing the preparation for {what} raised {type(e).__name__} "
                            f"instead of PreparationMismatchError: {e}")
        else:
            problems.append(f"reusing the preparation for {what} did not fail")

    other = fresh_function(prepared.fun)
    expect("another function", [_name(other), "prepare"],
           lambda: prepared.call(other, *args))
    changed = other_signature(args, prepared.static_argnums)
    expect("another signature",
           [signature_text(prepared.signature), signature_text(
               signature(changed, prepared.static_argnums))],
           lambda: prepared(*changed))
    return problems
