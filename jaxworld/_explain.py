"""`jaxworld.explain`: why a wrapped function, closure or operator will (or will not) re-trace.

The answer is built from what jaxworld already keeps — cache entries, dependency records, the
reason of the last re-trace — and only *reads* it: `explain` never traces, derives, validates or
re-stamps anything, and does not count in `jaxworld.stats`. Comparing a record with the present
world re-walks what the origin can reach (`DependencyRecord.changes`), which is read-only.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import types
from typing import Any

from jax import tree_util

from . import _caches, _epoch
from ._closure import OpaqueClosure
from ._compat import ClosedJaxpr, Jaxpr
from ._policy import get_policy
from ._text import change_lines, location, short_aval

_INDENT = "    "


def explain(obj: Any) -> str:
    """A human-readable account of a jaxworld object and the world it was traced in.

    For a wrapped function (`jaxworld.wrap`), an `OpaqueClosure` (root or derived, including the
    pullback of `jaxworld.vjp`) or a prepared operator (`jaxworld.grad`, `hessian`, `jit`, ...):
    its origin (qualified name, file:line), the epoch of its trace and the current one, its
    dependencies, and what changed since the trace — old vs new, and where the new definition
    came from (file:line, or the notebook cell). A wrapped function traced for several input
    signatures lists each. `explain` only reads: it never re-traces and changes no state.

    Anything else that holds such objects — ``jax.jit(jax.hessian(wrap(f)))``, an
    ``eqx.filter_jit`` function, a `functools.partial`, a bound method, a closure, an equinox
    Module — lists each one reachable inside it, with the path that reaches it.

    Args:
      obj: a wrapped function, an `OpaqueClosure`, a `jaxworld.Operator`, or anything that
        holds them.

    Returns:
      The explanation, as text (print it).

    Raises:
      TypeError: `obj` holds no wrapped function, `OpaqueClosure` or operator.

    Example:
      >>> import jax.numpy as jnp, jaxworld
      >>> f = jaxworld.wrap(lambda x: jnp.sin(x))
      >>> _ = f(1.0)
      >>> "traced at epoch" in jaxworld.explain(f)
      True
    """
    from ._operators import Operator
    from ._wrap import Wrapped

    if isinstance(obj, Operator):
        lines = [f"jaxworld operator {obj.__name__} ({obj._api} of {obj.__wrapped__.__name__}), "
                 "compiled once per input signature and world by jax.jit",
                 *_wrapped_lines(obj.__wrapped__)]
    elif isinstance(obj, Wrapped):
        lines = _wrapped_lines(obj)
    elif isinstance(obj, OpaqueClosure):
        lines = _closure_lines(obj)
    else:
        found = reachable(obj)
        if not found:
            raise TypeError(
                f"jaxworld.explain: found no wrapped function (jaxworld.wrap), OpaqueClosure or "
                f"jaxworld operator in {type(obj).__name__} {obj!r:.60} (looked through "
                "jax.jit / eqx.filter_jit objects, functools.partial, bound methods, closures, "
                "the globals a function names, and pytrees). Wrap the function first: "
                "`f = jaxworld.wrap(f)`, use it, then `print(jaxworld.explain(f))`.")
        lines = [f"{type(obj).__name__} {_short_name(obj)} holds {len(found)} jaxworld "
                 "object(s):"]
        for path, inner in found:
            lines.append(f"{_INDENT}reached as {path}:")
            lines += [_INDENT * 2 + line for line in explain(inner).split("\n")]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# What a transformed function holds (issue #14): `jax.jit(jax.hessian(wrap(f)))`, an
# `eqx.filter_jit`, a `functools.partial`, an optimistix / lineax operator, a plain closure.

_MAX_DEPTH = 10


def reachable(obj: Any) -> list[tuple[str, Any]]:
    """Every wrapped function, `OpaqueClosure` or operator reachable inside `obj`, with a path.

    Looks through `__wrapped__` (`jax.jit`, `functools.wraps`), `functools.partial`, bound
    methods, a function's closure cells, defaults and the globals its code names (user code
    only: a library's globals are not walked), and pytree leaves (an equinox Module, a list).
    Read-only; at most `_MAX_DEPTH` steps deep; each object once.
    """
    from ._errors import _library_dirs
    from ._operators import Operator
    from ._wrap import Wrapped

    found: list[tuple[str, Any]] = []
    seen: set[int] = set()
    keep_alive = []  # ids are meaningful only while their objects live
    library = _library_dirs()

    def visit(x: Any, path: str, depth: int) -> None:
        if id(x) in seen or depth > _MAX_DEPTH:
            return
        seen.add(id(x))
        keep_alive.append(x)
        if isinstance(x, (Wrapped, Operator, OpaqueClosure)):
            found.append((path, x))
            return
        if isinstance(x, (str, bytes, int, float, complex, bool, type(None), type,
                          types.ModuleType)):
            return
        step = depth + 1
        if isinstance(x, (ClosedJaxpr, Jaxpr)):
            # A closure-converted function (lineax's FunctionLinearOperator, equinox's
            # filter_closure_convert) keeps a jaxpr: its world_call equations hold the closures.
            for closure in _world_calls(x):
                visit(closure, f"{path} (world_call in a jaxpr)", step)
            return
        if isinstance(x, functools.partial):
            visit(x.func, f"{path}.func", step)
            for i, a in enumerate(x.args):
                visit(a, f"{path}.args[{i}]", step)
            for k, v in (x.keywords or {}).items():
                visit(v, f"{path}.keywords[{k!r}]", step)
            return
        if isinstance(x, types.MethodType):
            visit(x.__func__, f"{path}.__func__", step)
            visit(x.__self__, f"{path}.__self__", step)
            return
        wrapped = _safe_getattr(x, "__wrapped__")
        if wrapped is not None:
            visit(wrapped, f"{path}.__wrapped__", step)
        if isinstance(x, types.FunctionType):
            code = x.__code__
            for name, cell in zip(code.co_freevars, x.__closure__ or (), strict=False):
                try:
                    visit(cell.cell_contents, f"{path} (closure variable {name!r})", step)
                except ValueError:  # an empty cell
                    pass
            for i, default in enumerate(x.__defaults__ or ()):
                visit(default, f"{path}.__defaults__[{i}]", step)
            if not os.path.abspath(code.co_filename).startswith(library):
                for name in code.co_names:
                    if name in x.__globals__:
                        visit(x.__globals__[name], f"{path} (global {name!r})", step)
            return
        if dataclasses.is_dataclass(x):  # an equinox Module: its static fields too
            for field in dataclasses.fields(x):
                visit(_safe_getattr(x, field.name), f"{path}.{field.name}", step)
            return
        try:
            leaves = tree_util.tree_leaves_with_path(x)
        except Exception:  # a pytree whose flatten fails: nothing to see
            return
        if len(leaves) == 1 and leaves[0][1] is x:
            call = _safe_getattr(type(x), "__call__")
            if isinstance(call, (Wrapped, types.FunctionType)) and not isinstance(x, type):
                visit(call, f"{path}.__call__", step)  # a callable object's own method
            return
        for key, leaf in leaves:
            visit(leaf, f"{path}{tree_util.keystr(key)}", step)

    visit(obj, _short_name(obj), 0)
    return found


def _world_calls(jaxpr: Any) -> list[OpaqueClosure]:
    """The root closures bound by `world_call` equations in `jaxpr`, at any depth."""
    from ._wrap import _nested_roots

    return list(_nested_roots(jaxpr))


def _safe_getattr(x: Any, name: str) -> Any:
    try:
        return getattr(x, name, None)
    except Exception:  # a property that raises
        return None


def _short_name(obj: Any) -> str:
    name = getattr(obj, "__name__", None) or type(obj).__name__
    return f"{name}" if isinstance(name, str) else type(obj).__name__


# ---------------------------------------------------------------------------------------------
# Pieces

def _origin_text(fun: Any) -> str:
    """'qualname (file:line)' of a callable, looking through partials, methods and objects."""
    target = fun
    for _ in range(8):  # unwrap a few layers, never loop forever
        if isinstance(target, functools.partial):
            target = target.func
        elif isinstance(target, (types.MethodType, staticmethod, classmethod)):
            target = target.__func__
        elif isinstance(target, types.FunctionType) and "__wrapped__" in target.__dict__:
            target = target.__wrapped__  # a decorator's wrapper (equinox wraps Module methods)
        elif isinstance(target, (types.FunctionType, type)):
            break
        elif getattr(target, "__wrapped__", None) is not None:
            target = target.__wrapped__
        elif callable(target) and not isinstance(target, types.BuiltinFunctionType):
            target = type(target).__call__
        else:
            break
    name = getattr(fun, "__qualname__", None) or getattr(target, "__qualname__", None) or repr(fun)
    where = _where_defined(target)
    return f"{name} ({where})" if where else str(name)


def _where_defined(target: Any) -> str | None:
    code = getattr(target, "__code__", None)
    if isinstance(code, types.CodeType):
        return location(code.co_filename, code.co_firstlineno)
    if isinstance(target, type):
        try:
            return location(inspect.getfile(target), inspect.getsourcelines(target)[1])
        except (TypeError, OSError):
            return None
    return None


def _signature_text(key: Any) -> str:
    try:
        in_tree, avals, static = key.in_tree, key.avals, key.static
    except AttributeError:
        return repr(key)
    parts = [short_aval(a) for a in avals]
    parts += [f"{where}={value!r:.40} (static)" for where, value in static]
    parts += _static_leaf_parts(in_tree, avals)
    return "(" + ", ".join(parts) + ")"


_MAX_STATIC_LEAVES_SHOWN = 6


def _static_leaf_parts(in_tree: Any, avals: tuple) -> list[str]:
    """The static leaves that `in_tree` carries (`_filter.py`), by key path."""
    from ._filter import _argument_path

    try:
        full = tree_util.tree_unflatten(in_tree, list(avals))
        leaves = tree_util.tree_flatten_with_path(full)[0]
    except Exception:  # not a filtered signature
        return []
    aval_ids = {id(a) for a in avals}
    static = [(tree_util.keystr(path), leaf) for path, leaf in leaves if id(leaf) not in aval_ids]
    parts = [f"{_argument_path(path)}={value!r:.40} (static leaf)"
             for path, value in static[:_MAX_STATIC_LEAVES_SHOWN]]
    if len(static) > _MAX_STATIC_LEAVES_SHOWN:
        parts.append(f"... {len(static) - _MAX_STATIC_LEAVES_SHOWN} more static leaves")
    return parts


def _policy_text(wrapped: Any) -> str:
    own = getattr(wrapped, "_policy", None)
    if own is not None:
        return f"{own!r} (set on this wrapped function)"
    return f"{get_policy()!r} (global or block policy in force here)"


def _header(wrapped: Any) -> list[str]:
    return [
        f"wrapped function {wrapped.__qualname__}",
        f"{_INDENT}origin: {_origin_text(wrapped.__wrapped__)}",
        f"{_INDENT}current epoch: {_epoch.epoch()}",
        f"{_INDENT}stale-closure policy: {_policy_text(wrapped)}",
    ]


def _wrapped_lines(wrapped: Any) -> list[str]:
    lines = _header(wrapped)
    entries = list(wrapped._entries.items())
    if not entries:
        lines.append(f"{_INDENT}not traced yet: it is traced on its first call, once per input "
                     "signature")
        return lines
    shown: dict[tuple[str, ...], int] = {}  # dependency lists already printed -> signature
    for i, (key, entry) in enumerate(entries, 1):
        title = f"signature {i} of {len(entries)}: {_signature_text(key)}"
        lines.append(f"{_INDENT}{title}")
        lines += _entry_lines(entry, entry.closure, _INDENT * 2, shown, i)
    return lines


def _entry_lines(entry: Any, root: OpaqueClosure | None, indent: str,
                 shown: dict[tuple[str, ...], int] | None = None, number: int = 0) -> list[str]:
    """The state of one cache entry, seen from its root closure `root`."""
    now = _epoch.epoch()
    if root is None:
        return [f"{indent}not traced yet (a previous trace was interrupted)"]
    lines = []
    traced = root._traced_epoch
    lines.append(f"{indent}traced at epoch {traced if traced is not None else '?'}; valid through "
                 f"epoch {root.epoch}; current epoch {now}")
    superseded = entry.closure is not root
    if superseded:
        lines.append(f"{indent}state: SUPERSEDED — the function was re-traced since (at epoch "
                     f"{entry.closure._traced_epoch}); this closure is the old world's")
    elif root._frozen:
        lines.append(f"{indent}state: FROZEN — dependencies changed, and policy 'frozen' keeps "
                     "the old world's trace until the next advance")
    elif entry.pending is not None:
        lines.append(f"{indent}state: STALE since epoch {entry.pending[0]} — re-traced from the "
                     "origin on its next use (or per the policy)")
    elif root.is_current:
        lines.append(f"{indent}state: current")
    else:
        lines.append(f"{indent}state: not yet checked for epoch {now} — checked on its next use")
    # Where a change to it reaches in JAX's caches (issue #13).
    lines.append(f"{indent}JAX caches: {_caches.describe(root)}")

    # What changed since the trace.
    if entry.retraced_because is not None and not superseded:
        epoch, changes = entry.retraced_because
        lines.append(f"{indent}last re-trace, at epoch {epoch}, because:")
        lines += change_lines(changes, indent + _INDENT)
    if superseded:
        if entry.retraced_because is not None:
            lines.append(f"{indent}re-traced because:")
            lines += change_lines(entry.retraced_because[1], indent + _INDENT)
    elif entry.pending is not None:
        lines.append(f"{indent}changed since the trace (found by the advance to epoch "
                     f"{entry.pending[0]}):")
        lines += change_lines(entry.pending[1], indent + _INDENT)
    elif entry.record is not None:
        live = entry.record.changes()  # a read-only re-walk
        if live:
            lines.append(f"{indent}changed since the trace, not yet seen by any world: call "
                         "jaxworld.advance() (automatic after each notebook cell) to use them:")
            lines += change_lines(live, indent + _INDENT)
        else:
            lines.append(f"{indent}changed since the trace: nothing")
    if not superseded:
        lines += _nested_lines(entry, indent)
        if entry.record is not None:
            deps = tuple(entry.record.describe())
            if shown is not None and deps in shown:
                lines.append(f"{indent}dependencies ({len(deps)}): the same as signature "
                             f"{shown[deps]}'s")
            else:
                if shown is not None:
                    shown[deps] = number
                lines.append(f"{indent}dependencies ({len(deps)}):")
                lines += [f"{indent}{_INDENT}- {d}" for d in deps]
        else:
            lines.append(f"{indent}dependencies: none recorded")
    return lines


def _nested_lines(entry: Any, indent: str) -> list[str]:
    lines = []
    for nested in entry.nested:
        inner = nested._entry
        if inner is None:
            continue
        name = inner.owner.__qualname__
        if inner.closure is not nested:
            state = (f"re-traced at epoch {inner.closure._traced_epoch} "
                     "(this trace used the old one)")
        elif inner.pending is not None:
            state = f"STALE since epoch {inner.pending[0]}"
        else:
            state = f"valid through epoch {nested.epoch}"
        lines.append(f"{indent}calls wrapped helper {name}: {state}")
        changes = (inner.pending[1] if inner.pending is not None and inner.closure is nested
                   else inner.retraced_because[1] if inner.closure is not nested
                   and inner.retraced_because is not None else [])
        lines += change_lines(changes, indent + _INDENT)
    return lines


def _closure_lines(closure: OpaqueClosure) -> list[str]:
    chain = []
    node = closure
    while node._derivation is not None:
        d = node._derivation
        chain.append(f"{d.transformation}.{d.part}" if d.part else d.transformation)
        node = d.parent
    root = node
    kind = "pullback " if type(closure).__name__ == "Pullback" else ""
    lines = [f"{kind}OpaqueClosure {closure.name} {closure.signature()}"]
    if chain:
        lines.append(f"{_INDENT}derived from the root closure {root.name} by: "
                     + " of ".join(chain)
                     + " (re-derived from the fresh root when the root is re-traced)")
    lines.append(f"{_INDENT}origin: {_origin_text(root._origin)}")
    entry = root._entry
    if entry is None:
        lines.append(f"{_INDENT}traced for a single call (it closed over tracers of an enclosing "
                     f"transformation); no dependency record; current epoch {_epoch.epoch()}")
        return lines
    lines.append(f"{_INDENT}wrapped function: {entry.owner.__qualname__}; stale-closure policy: "
                 f"{_policy_text(entry.owner)}")
    lines += _entry_lines(entry, root, _INDENT)
    return lines


