"""`DependencyRecord`: a snapshot of what a trace depended on, and whether it still holds."""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._classify import is_user_function
from ._guards import _Guards, _live
from ._ran import user_code_that_ran
from ._settings import settings
from ._tokens import _EMPTY_CELL, _NONE_TOKEN, _Ident, _short, _Unverifiable, _where
from ._walk import Walker, _Entry


class Change(NamedTuple):
    """One dependency whose snapshot no longer matches."""

    what: str  # the dependency and the path through which it was reached
    old: str  # short description of the value at capture time
    new: str  # short description of the value now
    where: str | None  # "file.py:12" / "notebook cell" for code; None when unknown


class Site(NamedTuple):
    """A user-level place a trace read: a global, a class attribute, a field, a closure cell.

    For tools that change a dependency on purpose (`jaxworld.testing`'s staleness mutants).
    """

    what: str  # as in `Change.what`
    kind: str  # "function", "number", "array", "method" or "other"
    name: str  # the global / attribute / field name (the variable name of a cell)
    value: Any  # the live value now
    set: Callable[[Any], None]  # rebinds the place


def _same(old: Any, new: Any) -> bool:
    try:
        return bool(old == new)
    except Exception:  # exotic __eq__ (e.g. in a config value): assume changed
        return False


def _config_diff(old: tuple, new: tuple) -> tuple[str, str]:
    """Name the differing configuration flags (a tuple of (name, value) pairs)."""
    old_flags, new_flags = dict(old), dict(new)
    names = [n for n in {**old_flags, **new_flags}
             if not _same(old_flags.get(n, _EMPTY_CELL), new_flags.get(n, _EMPTY_CELL))]
    return (", ".join(f"{n}={_short(old_flags.get(n))}" for n in names),
            ", ".join(f"{n}={_short(new_flags.get(n))}" for n in names))


def _is_below(key: tuple[str, ...], reported: set[tuple[str, ...]]) -> bool:
    return any(key[:i] in reported for i in range(1, len(key)))


def _weak_or_strong(obj: Any) -> Callable[[], Any]:
    try:
        return (weakref.WeakMethod(obj) if isinstance(obj, types.MethodType)
                else weakref.ref(obj))
    except TypeError:
        return lambda: obj


class DependencyRecord:
    """A snapshot of everything a trace can depend on.

    `capture(fun, roots=...)` walks `fun` and the extra roots now (for a wrapped function's entry:
    its argument skeleton, so that static arguments and the classes and static fields of argument
    pytrees are covered); `changes()` walks again from the same roots and returns one `Change` per
    top-most difference (what lies under a changed helper is not reported separately). The origin
    is held weakly when Python allows it (``strong=True`` holds it strongly); if it has been
    garbage collected, `changes()` says so. The roots are held strongly.
    """

    def __init__(self, origin_ref: Callable[[], Any], origin_text: str,
                 roots: tuple[tuple[str, Any], ...], walker: Walker) -> None:
        self._origin_ref = origin_ref
        self._origin_text = origin_text
        self._roots = roots
        self._entries: list[_Entry] = walker.entries
        self._by_key = {e.key: e for e in self._entries}
        self._guards: _Guards | None = walker.finished_guards()  # None: walk on every check
        # False when a value could not be inspected: every check then reports a change.
        self.verifiable = walker.verifiable
        self._codes = frozenset(walker.codes)
        # Every user function the walk met, held weakly (`user_callables`).
        self._functions = tuple(map(weakref.ref, dict.fromkeys(walker.functions)))
        self._reach = settings.reach  # a record is compared only under the switch it was made with
        # Code that ran during the trace but that nothing in the record reaches (`cover`).
        self.unreached: tuple[str, ...] = ()
        # The record of the world `changes()` last found changed: what `capture` would make then
        # (see `take_successor`).
        self._successor: DependencyRecord | None = None

    @classmethod
    def capture(cls, fun: Any, *, roots: tuple[tuple[str, Any], ...] = (),
                strong: bool = False) -> DependencyRecord:
        """Snapshot everything `fun` (and each ``(label, value)`` of `roots`) can reach."""
        if not settings.reach:
            roots = ()
        walker = Walker(capture=True, guards=True)
        walker.walk(fun, roots)
        ref = (lambda: fun) if strong else _weak_or_strong(fun)
        return cls(ref, _short(fun), roots, walker)

    def cover(self, jaxpr: Any, boundary: types.CodeType) -> None:
        """Check that this record reaches all the user code that ran while `jaxpr` was traced.

        `boundary`: the code of the function that started the trace (frames outside it are the
        caller's). User code that ran but that the walk did not reach was found through a path
        the record cannot watch (a registry inside a library, a name computed at run time): the
        record then reports a change at every check, so the trace is re-made at every advance
        (safe, not fast), and `describe()` / `jaxworld.explain` name that code.
        """
        if not settings.reach:
            return
        missing = user_code_that_ran(jaxpr, boundary) - self._codes
        if missing:
            self.unreached = tuple(
                f"code that ran during the trace: {c.co_qualname} "
                f"({_where(c) or c.co_filename})"
                for c in sorted(missing, key=lambda c: (c.co_filename, c.co_firstlineno)))
            self.verifiable = False
            self._guards = None

    def _guards_hold(self) -> bool:
        """True when every guard holds: the record holds (False: walk to know)."""
        guards = self._guards
        return guards is not None and guards.hold()

    def changes(self, *, memo: dict | None = None) -> list[Change]:
        """What differs from the snapshot; [] when the record still holds.

        `memo`: pass one fresh dict to the `changes()` calls of several records made at the same
        moment (one `advance()`), so that a NumPy array they share is hashed once. Do not reuse it
        later: arrays may change.
        """
        origin = self._origin_ref()
        if origin is None:
            return [Change(f"traced callable {self._origin_text}", self._origin_text,
                           "<garbage collected>", None)]
        if self._reach != settings.reach:
            return [Change("dependency record", f"made with settings.reach={self._reach}",
                           f"checked with settings.reach={settings.reach}", None)]
        if self.unreached:
            return [Change(what, "ran during the trace", "not reachable from the function: "
                           "checked by re-tracing at every advance", None)
                    for what in self.unreached]
        if self._guards_hold():
            if settings.verify_guards:
                found = self._walk_changes(origin, memo)[0]
                # Another thread may have changed something between the two checks: then the
                # guards fail now too, and the change is real.
                assert not found or not self._guards_hold(), (
                    f"jaxworld internal error: the guards of {self!r} held but a walk found "
                    f"changes: {found}")
                return found
            return []
        out, walker = self._walk_changes(origin, memo)
        if not out:
            self._guards = walker.finished_guards()  # e.g. an equal value bound anew: follow it
        elif walker.verifiable and walker.guards is not None:
            self._successor = DependencyRecord(self._origin_ref, self._origin_text, self._roots,
                                               walker)
        return out

    def take_successor(self) -> DependencyRecord | None:
        """The record `capture` would make, from the walk of the last `changes()` that found a
        change (None if there is none). Taken once.

        A re-trace after a change would walk the same objects that `advance()` has just walked
        to find the change, so it takes this record instead of walking again. Its guards are
        not checked here: the re-trace checks the record after the trace, as it checks a fresh
        capture, and traces again if anything changed since the walk.
        """
        successor, self._successor = self._successor, None
        if (successor is None or successor._reach != settings.reach
                or successor._origin_ref() is None):
            return None
        if settings.verify_guards and successor._guards_hold():
            fresh = Walker(capture=True)
            fresh.walk(successor._origin_ref(), successor._roots)
            got = [(e.key, e.token) for e in successor._entries]
            want = [(e.key, e.token) for e in fresh.entries]
            same = len(got) == len(want) and all(
                k == j and _same(t, u) for (k, t), (j, u) in zip(got, want, strict=True))
            # Another thread may have changed something between the check and the walk: then
            # the guards fail now too, and the difference is real.
            assert same or not successor._guards_hold(), (
                f"jaxworld internal error: the successor of {self!r} holds its guards but a "
                f"fresh walk differs")
        return successor

    def _walk_changes(self, origin: Any, memo: dict | None) -> tuple[list[Change], Walker]:
        # A capturing walk (descriptions, weak identities): if something changed, it is the
        # record of the new world as well (`take_successor`).
        walker = Walker(capture=True, memo=memo, guards=True, keep_values=True)
        walker.walk(origin, self._roots)
        old = self._by_key
        seen: set[tuple[str, ...]] = set()
        reported: set[tuple[str, ...]] = set()
        out: list[Change] = []
        for entry in walker.entries:
            seen.add(entry.key)
            if reported and _is_below(entry.key, reported):
                continue
            before = old.get(entry.key)
            if before is not None and _same(before.token, entry.token):
                continue
            reported.add(entry.key)
            if entry.kind == "config" and before is not None:
                old_text, new_text = _config_diff(before.token, entry.token)
                out.append(Change(str(entry.what), old_text, new_text, None))
                continue
            old_text = (str(before.text or "?") if before is not None
                        else "<not a dependency before>")
            try:
                where = _where(entry.value)
            except Exception:
                where = None
            out.append(Change(str(entry.what), old_text, str(entry.text or "?"), where))
        for entry in self._entries:  # dependencies the new walk no longer reaches
            if (entry.key not in seen and not _is_below(entry.key, reported)
                    and entry.key not in reported):
                reported.add(entry.key)
                out.append(Change(str(entry.what), str(entry.text or "?"), "<no longer reached>",
                                  None))
        for entry in walker.entries:  # a record holds its values weakly: drop the live ones
            entry.value = None
        return out, walker

    def user_callables(self) -> list[Any]:
        """The user functions (and `jax.jit`s of user functions) at this record's places, and
        every other user function its walk met, live: JAX may hold traces of them keyed by
        identity (`_caches.evict_reached`)."""
        out = []
        for site in self.sites():
            value = site.value
            inner = getattr(value, "_fun", value)  # a `jax.jit` object's function
            if isinstance(inner, types.FunctionType) and is_user_function(inner):
                out.append(value)
        # And the user functions met elsewhere (behind a library wrapper's `__wrapped__`, in a
        # closure cell, a method of a class): `jax.checkpoint(lambda v: act(v))` caches its
        # trace keyed on the lambda, which no user-level place holds.
        listed = {id(v) for v in out}
        out.extend(fn for ref in self._functions
                   if (fn := ref()) is not None and id(fn) not in listed)
        return out

    def sites(self) -> list[Site]:
        """The user-level places this record read (globals of user code, attributes of user
        classes, fields of user and data-like objects, closure cells), in walk order, with their
        live values. Places whose holder is gone are left out."""
        out: list[Site] = []
        for entry in self._entries:
            if entry.place is None:
                continue
            kind, held, name = entry.place
            try:
                holder = _live(held())
                value, setter = _read_place(kind, holder, name)
            except Exception:  # a freed holder, a raising descriptor: not a place any more
                continue
            label = name if isinstance(name, str) else holder.__code__.co_freevars[name]
            out.append(Site(str(entry.what), _kind_of(value, kind), label, value, setter))
        return out

    def describe(self) -> list[str]:
        """One human-readable line per dependency (absent globals and builtins summarised)."""
        lines: list[str] = []
        absent: list[str] = []
        builtin_names: list[str] = []
        for entry in self._entries:
            if entry.kind == "absent":
                absent.append(entry.key[-1])
            elif entry.kind == "builtin":
                builtin_names.append(entry.key[-1])
            elif entry.kind == "config":
                flags = ", ".join(f"{n}={v}" for n, v in entry.token)
                lines.append(f"JAX configuration outside jax.jit's cache key: {flags}")
            elif entry.key[-1] in ("__defaults__", "__kwdefaults__") and entry.token == _NONE_TOKEN:
                continue  # "no defaults" is still checked, just not worth a line
            elif entry.key[0] == "root" and _plain_data(entry.token):
                continue  # the shapes and static values of the arguments: the signature says them
            else:
                lines.append(f"{entry.what} = {entry.text}")
        if builtin_names:
            lines.append("builtins: " + ", ".join(dict.fromkeys(builtin_names)))
        if absent:
            lines.append("names watched in case they become globals: "
                         + ", ".join(dict.fromkeys(absent)))
        lines.extend(f"{what}: not reachable from the function, so re-traced at every advance"
                     for what in self.unreached)
        return lines

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<DependencyRecord of {self._origin_text}: {len(self)} entries>"


def _plain_data(token: Any) -> bool:
    """Whether a token holds only values (no identity of code or objects)."""
    stack = [token]
    while stack:
        t = stack.pop()
        if isinstance(t, tuple):
            stack.extend(t)
        elif isinstance(t, (_Ident, _Unverifiable)):
            return False
    return True


def _read_place(kind: str, holder: Any, name: Any) -> tuple[Any, Callable[[Any], None]]:
    if kind == "global":
        namespace = holder.__globals__
        return namespace[name], lambda v: namespace.__setitem__(name, v)
    if kind == "cell":
        cell = holder.__closure__[name]

        def set_cell(v: Any) -> None:
            cell.cell_contents = v
        return cell.cell_contents, set_cell
    if kind == "class":
        return holder.__dict__[name], lambda v: setattr(holder, name, v)
    # "field": works for frozen dataclasses and equinox Modules too.
    return getattr(holder, name), lambda v: object.__setattr__(holder, name, v)


def _kind_of(value: Any, place: str) -> str:
    if isinstance(value, types.FunctionType) and is_user_function(value):
        return "method" if place == "class" else "function"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number"
    if isinstance(value, np.ndarray):
        return "array"
    return "other"
