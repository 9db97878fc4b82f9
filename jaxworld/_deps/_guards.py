"""Guards: a fast, exact "nothing changed"

A walk is a function of the objects it reads.  While walking, the walker can
also log every read as a *guard*: how to read the same place again, and a
check that what is read there now is the very object read before (for lists,
dicts, sets and NumPy arrays: with the same contents; for a class that could
be reassigned, of the same class).  When every guard holds, a new walk would
read the same objects and produce the same entries, so the record holds
without walking.  When one fails, `changes()` walks and decides exactly (an
equal value bound anew fails a guard but is no change).  Guards hold what
they read from weakly when Python allows, like the tokens.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import operator
import types
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._arrays import array_checker
from ._classify import TypeMemo, is_user_class, is_user_function
from ._tokens import (
    _ABSENT,
    _BUFFERS,
    _EMPTY_CELL,
    _MAX_DEPTH,
    _MORE_CONTAINERS,
    _buffer_token,
    _Environ,
    _environ_items,
    _instance_dict,
    _weak,
)


class _NotGuardable(Exception):
    """A value the guards cannot follow (nested too deeply): the record walks every time."""


def _holder(obj: Any) -> Callable[[], Any]:
    """A zero-argument function returning `obj`: a weak reference when Python allows.

    A dead one returns None; every read through it then raises or reads something else, so the
    guard fails (`_live`, where a read of None could look like a read of `obj`).
    """
    ref = _weak(obj)
    return ref if ref is not None else (lambda: obj)


def _live(obj: Any) -> Any:
    if obj is None:
        raise ReferenceError("a guard reads from an object that was freed")
    return obj


def _is(obj: Any) -> Callable[[Any], bool]:
    """`check(current)`: `current` is `obj` itself (held weakly when Python allows)."""
    ref = _weak(obj)
    if ref is None:
        return lambda current: current is obj
    # A weak-referenceable `obj` is not None, and a dead reference gives None.
    return lambda current: current is not None and current is ref()


def _checker(value: Any, depth: int = 0) -> Callable[[Any], bool]:
    """`check(current)`: `current` is `value`, with the contents the walk tokenized."""
    if value is _ABSENT or value is _EMPTY_CELL:
        return lambda current: current is value
    same = _is(value)
    content = _content_checker(value, depth)
    if content is None:
        return same
    return lambda current: same(current) and content(current)


# Types whose instances have nothing beyond their identity to check, found as they are met: all
# but NumPy arrays, the mutable (or element-holding) builtin containers, deques, mappingproxies,
# mutable buffers and `os.environ`, and their subclasses.
_HAVE_CONTENTS = (np.ndarray, tuple, list, dict, set, *_MORE_CONTAINERS, *_BUFFERS, _Environ)
_identity_only = TypeMemo(lambda cls: not issubclass(cls, _HAVE_CONTENTS))


def _content_checker(value: Any, depth: int) -> Callable[[Any], bool] | None:
    """What of `value` a token folds in beyond its identity (mirrors `_container_token`)."""
    if _identity_only(type(value)) or value is _ABSENT:
        return None  # the common cases first: nothing beyond identity
    if isinstance(value, np.ndarray):
        return array_checker(value)  # kept copy, digest or read-only flag (issue #13)
    if isinstance(value, _BUFFERS):
        snapshot = _buffer_token(value)
        return lambda current: _buffer_token(current) == snapshot
    if isinstance(value, _Environ):
        variables = _environ_items(value)
        return lambda current: _environ_items(current) == variables
    if not isinstance(value, (tuple, list, dict, set, *_MORE_CONTAINERS)):
        return None  # scalars, frozensets (hashable elements only), objects: identity says it all
    if depth >= _MAX_DEPTH:
        raise _NotGuardable
    if isinstance(value, set):
        # The members are held by the check itself: compared by id, they must stay alive, or a
        # freed member's id could be reused by a new one and the guard would hold (issue #11).
        members = tuple(value)
        ids = frozenset(map(id, members))
        return lambda current, _held=members: (
            len(current) == len(ids) and frozenset(map(id, current)) == ids)
    if isinstance(value, tuple):  # its elements are fixed: only their own contents can change
        inner = tuple((i, c) for i, v in enumerate(value)
                      if (c := _content_checker(v, depth + 1)) is not None)
        if not inner:
            return None
        return lambda current: all(check(current[i]) for i, check in inner)
    if isinstance(value, (dict, types.MappingProxyType)):
        checks = tuple((_checker(k, depth + 1), _checker(v, depth + 1))
                       for k, v in list(value.items()))

        def same_items(current):
            items = list(current.items())
            return len(items) == len(checks) and all(
                ck(k) and cv(v) for (ck, cv), (k, v) in zip(checks, items, strict=True))
        return same_items
    checks = tuple(_checker(v, depth + 1) for v in list(value))

    def same_elements(current):
        elements = list(current)
        return len(elements) == len(checks) and all(
            check(v) for check, v in zip(checks, elements, strict=True))
    return same_elements


def _cell_contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # not yet assigned
        return _EMPTY_CELL


def _equals(value: Any) -> Callable[[Any], bool]:
    return lambda current: current == value


def _builtins_of(fn: types.FunctionType) -> dict:
    return fn.__builtins__ if isinstance(fn.__builtins__, dict) else vars(builtins)


def _resolve(cls: type, name: str) -> tuple | tuple[str]:
    """(class, attribute, is a user class) where `name` is found along `cls.__mro__`."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass, klass.__dict__[name], is_user_class(klass)
    return _ABSENT


def _lacks(mro_ids: tuple[int, ...], names: list[str]) -> Callable[[Any], bool]:
    """`check(mro)`: the same classes (kept alive by the guards), none of which defines any of
    `names` (read when checked: the walk adds to it until it ends)."""
    def check(mro: tuple[type, ...]) -> bool:
        if tuple(map(id, mro)) != mro_ids:
            return False
        wanted = frozenset(names)
        return all(wanted.isdisjoint(klass.__dict__) for klass in mro)
    return check


def _same_resolution(found: Any) -> Callable[[Any], bool]:
    if found is _ABSENT:
        return lambda current: current is _ABSENT
    klass, attr, user = found
    same_class, same_attr = _is(klass), _checker(attr)
    return lambda current: (current is not _ABSENT and same_class(current[0])
                            and same_attr(current[1]) and current[2] == user)


def _slot_value(descriptor: Any, obj: Any, klass: type) -> Any:
    try:
        return descriptor.__get__(obj, klass)
    except AttributeError:
        return _EMPTY_CELL


def _is_absent_or_none(current: Any) -> bool:
    return current is _ABSENT or current is None


def _followed(content: Any) -> bool:
    """Whether a library function's closure cell holding `content` is walked."""
    return ((isinstance(content, types.FunctionType) and is_user_function(content))
            or isinstance(content, (functools.partial, types.MethodType)))


class _In(NamedTuple):
    """A read of `name` in a namespace (a dict or mappingproxy); `namespace()` reads it again.

    The guards of all reads in one namespace (`source`) are checked together, at C speed.
    """

    source: Any
    namespace: Callable[[], Any]
    name: str


def _dict_of(held: Callable[[], Any]) -> tuple[Any, Callable[[], Any]]:
    """(source, reader) of the instance `__dict__` of `held()` (a module, object, custom_jvp)."""
    return ("dict of", id(held())), lambda: _instance_dict(_live(held()))


def _group_check(namespace: Callable[[], Any], names: tuple[str, ...],
                 ids: tuple[int, ...]) -> Callable[[], bool]:
    absents = (_ABSENT,) * len(names)

    def check() -> bool:
        return tuple(map(id, map(namespace().get, names, absents))) == ids
    return check


class _Guards:
    """The guards of one walk: checks, and what their object ids refer to.

    Every object a guard compares by id is kept: strongly when Python cannot refer to it weakly,
    otherwise weakly, and the guards hold only while all of those are alive — so an id seen again
    is the same object. (Checked after the ids: an object alive at the end was alive at its
    comparison. Weak references without callbacks: a callback would run Python code whenever a
    user's rebinding frees an old helper, in the middle of their dict update.)
    """

    __slots__ = ("checks", "groups", "reads", "read_ids", "keep", "weak")

    def __init__(self) -> None:
        self.checks: list[Callable[[], bool]] = []
        self.groups: dict[Any, tuple[Callable[[], Any], list[str], list[int]]] = {}
        self.reads: list[Callable[[], Any]] = []  # reads checked by identity, all at once
        self.read_ids: list[int] = []
        self.keep: list[Any] = []  # strong references
        self.weak: list[weakref.ref] | tuple[weakref.ref, ...] = []

    def ident(self, value: Any) -> int:
        ref = _weak(value)
        if ref is not None:
            self.weak.append(ref)
        else:
            self.keep.append(value)
        return id(value)

    def alive(self) -> bool:
        """Whether every weakly kept object is still alive (C speed: no Python frame per item)."""
        return not any(map(operator.is_, map(operator.call, self.weak), itertools.repeat(None)))

    def finish(self) -> _Guards:
        checks = [_group_check(namespace, tuple(names), tuple(ids))
                  for namespace, names, ids in self.groups.values()]
        if self.reads:
            reads, ids = tuple(self.reads), tuple(self.read_ids)
            checks.append(lambda: tuple(map(id, map(operator.call, reads))) == ids)
        self.checks[:0] = checks  # the cheap, C-speed checks first
        self.groups, self.reads, self.read_ids = {}, [], []
        self.weak = tuple(self.weak)
        return self

    def hold(self) -> bool:
        try:
            for check in self.checks:
                if not check():
                    return False
        except Exception:  # a read that fails (a freed object, a raising descriptor): walk
            return False
        return self.alive()


