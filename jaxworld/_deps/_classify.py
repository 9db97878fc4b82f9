"""Which code is the user's (walked) and which is a library's (compared by identity).

A function is user code when its source file lies outside the standard library, site-packages, JAX,
NumPy and jaxworld (code run by ``exec`` or in a notebook cell counts as user code). Functions that
Python generates for a class (``dataclasses``' ``__init__``, ``namedtuple``'s ``__new__``, all with
the file name ``"<string>"``) belong to the module whose globals they run in.

A class is user code when *any* function it defines is user code, looking through decorators
(``functools.wraps`` chains, ``staticmethod``/``classmethod``/``property``): a user class whose
first method carries a library decorator (``@jax.named_call``, ``@jaxtyped``) or whose first
attribute is a library function (``act: Callable = jax.nn.gelu``) is still the user's (issue #11).
A class that defines no function at all is classified by its module.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import sys
import sysconfig
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from ._settings import settings
from ._tokens import _weak


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    for mod in (jax, np, sys.modules.get("jaxlib")):
        if mod is not None and getattr(mod, "__file__", None):
            dirs.add(os.path.dirname(mod.__file__))
    here = os.path.dirname(os.path.abspath(__file__))
    dirs.add(os.path.dirname(here))  # jaxworld's own code
    return tuple(sorted({os.path.join(os.path.realpath(d), "") for d in dirs}))


_LIBRARY_DIRS = _library_dirs()
_user_file_cache: dict[str, bool] = {}


def is_user_file(filename: str) -> bool:
    """True when `filename` (a co_filename or module __file__) is user code."""
    cached = _user_file_cache.get(filename)
    if cached is None:
        if filename.startswith("<frozen "):  # frozen stdlib modules
            cached = False
        elif filename.startswith("<"):  # <string>, <ipython-input-...>, <stdin>, <cell>
            cached = True
        else:
            real = os.path.realpath(filename)
            cached = not real.startswith(_LIBRARY_DIRS)
        _user_file_cache[filename] = cached
    return cached


def _module_is_user(name: Any, namespace: dict | None = None) -> bool | None:
    """Whether module `name` is user code; None when no such module is loaded."""
    if not isinstance(name, str):
        return None
    parts = name.split(".")
    found = None
    # Extension types often name a submodule that is not in sys.modules, or that is there without
    # a file ("jaxlib._jax.pytree"): the nearest enclosing package with a file decides.
    while parts:
        mod = sys.modules.get(".".join(parts))
        if mod is not None:
            if found is None:
                if namespace is not None and getattr(mod, "__dict__", None) is not namespace:
                    return None  # a namespace that merely borrows the name
                found = mod
            file = getattr(mod, "__file__", None)
            if isinstance(file, str):
                return is_user_file(file)
        parts.pop()
    if found is None:
        return None
    # No file anywhere: a built-in module, a notebook's __main__, or a module made by hand.
    return found.__name__ not in sys.builtin_module_names


def _generated_by_python(fn: types.FunctionType) -> bool:
    return fn.__code__.co_filename == "<string>"


def _generated_for_a_dataclass(fn: types.FunctionType) -> bool:
    # `dataclasses` makes __init__/__eq__/... by exec; their code keeps the maker's qualname. They
    # follow from the class's fields alone, which the class itself records.
    return fn.__code__.co_qualname.startswith("__create_fn__.")


def is_user_function(fn: types.FunctionType) -> bool:
    if _generated_for_a_dataclass(fn):
        return False
    if not _generated_by_python(fn):
        return is_user_file(fn.__code__.co_filename)
    namespace = fn.__globals__
    file = namespace.get("__file__")
    if isinstance(file, str):
        return is_user_file(file)
    name = namespace.get("__name__")
    if isinstance(name, str) and name.startswith("namedtuple_"):
        return False  # collections.namedtuple's generated methods
    decided = _module_is_user(name, namespace)
    return True if decided is None else decided  # exec'd code: the user's


def functions_in(attr: Any) -> Iterator[types.FunctionType]:
    """The Python functions behind a class attribute, through decorators (bounded)."""
    stack = [attr]
    seen: set[int] = set()
    while stack and len(seen) < 16:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            yield obj
        elif isinstance(obj, (staticmethod, classmethod)):
            stack.append(obj.__func__)
            continue
        elif isinstance(obj, property):
            stack.extend(f for f in (obj.fget, obj.fset, obj.fdel) if f is not None)
            continue
        elif isinstance(obj, (functools.partialmethod, functools.cached_property)):
            stack.append(obj.func)
            continue
        try:
            wrapped = object.__getattribute__(obj, "__dict__").get("__wrapped__")
        except (AttributeError, TypeError):
            wrapped = None
        if wrapped is not None:
            stack.append(wrapped)


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement or at run time


def _lives_forever(cls: type) -> bool:
    """A static type, or a class a library module defines at its top level."""
    if not cls.__flags__ & _HEAPTYPE:
        return True
    name = cls.__module__
    module = sys.modules.get(name) if isinstance(name, str) else None
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict):
        return False
    file = namespace.get("__file__")  # read from the dict: no module __getattr__ is run
    return (isinstance(file, str) and not is_user_file(file)
            and namespace.get(cls.__qualname__) is cls)


# Values `functions_in` finds no function behind, whatever their contents.
_NO_FUNCTIONS = frozenset({
    str, bytes, int, float, complex, bool, type(None), tuple, list, dict, set, frozenset,
    types.MemberDescriptorType, types.GetSetDescriptorType, types.WrapperDescriptorType,
    types.MethodDescriptorType, types.BuiltinFunctionType, types.MappingProxyType})
_WRAPPERS = (staticmethod, classmethod, property, functools.partialmethod,
             functools.cached_property)


def _parts(value: Any) -> tuple:
    """What a wrapper that cannot be referred to weakly wraps (what `functions_in` starts from)."""
    cls = type(value)
    if cls is staticmethod or cls is classmethod:
        return (value.__func__,)
    if cls is property:
        return (value.fget, value.fset, value.fdel)
    if cls is functools.partialmethod or cls is functools.cached_property:
        return (value.func,)
    return tuple(functions_in(value))


_LEAVES = frozenset({str, bytes, int, float, complex, bool, type(None)})  # reach no class
_NONES = itertools.repeat(None)


class _Values:
    """The attribute values of a class when it was decided, to tell later whether they changed.

    Held without keeping the class alive: a method's globals hold the class, so a strong
    reference from this cache (whose key is the class) would keep every redefined class, and what
    its methods read, alive for good. Values are compared by id. Strings, numbers and None are
    held (they reach no class); values Python can refer to weakly are held weakly (a dead one is
    a change); so their ids cannot be reused meanwhile. The other values' ids can be, once the old
    value is freed, so what can change the decision is compared too: the type, and what a
    staticmethod, classmethod or property wraps (held the same way).
    """

    __slots__ = ("ids", "inner", "keep", "refs", "type_at", "types")

    def __init__(self, values: tuple) -> None:
        self.ids = tuple(map(id, values))
        keep, refs, type_at, inner = [], [], [], []

        for i, value in enumerate(values):
            cls = type(value)
            if cls in _LEAVES:
                keep.append(value)
            elif (ref := _weak(value)) is not None:
                refs.append(ref)
            else:
                type_at.append(i)
                if cls not in _NO_FUNCTIONS and (cls.__dictoffset__
                                                 or isinstance(value, _WRAPPERS)):
                    parts = _parts(value)
                    inner.append((i, tuple(map(id, parts))))
                    for part in parts:  # held like the values, so their ids stay theirs
                        part_ref = _weak(part)
                        if part_ref is None:
                            keep.append(part)
                        else:
                            refs.append(part_ref)
        self.keep, self.refs, self.inner = tuple(keep), tuple(refs), tuple(inner)
        self.type_at = tuple(type_at)
        self.types = tuple(type(values[i]) for i in type_at)

    def same(self, values: tuple) -> bool:
        # The same ids, and everything held weakly still alive: the very same objects (two live
        # objects never share an id).
        if tuple(map(id, values)) != self.ids:
            return False
        if self.refs and any(map(operator.is_, map(operator.call, self.refs), _NONES)):
            return False
        if self.type_at and tuple(map(type, map(values.__getitem__, self.type_at))) != self.types:
            return False
        return all(tuple(map(id, _parts(values[i]))) == ids for i, ids in self.inner)


class _Held:
    """The attribute values of a class that is never freed (a library module's own): held."""

    __slots__ = ("values",)

    def __init__(self, values: tuple) -> None:
        self.values = values

    def same(self, values: tuple) -> bool:
        return len(values) == len(self.values) and all(map(operator.is_, self.values, values))


_class_cache: weakref.WeakKeyDictionary[type, tuple[_Held | _Values, bool]] = (
    weakref.WeakKeyDictionary())


def is_user_class(cls: type) -> bool:
    if not settings.reach:
        return _first_function_decides(cls)
    try:
        values = tuple(cls.__dict__.values())
        cached = _class_cache.get(cls)
    except TypeError:  # not weak-referenceable
        return _decide_class(cls)
    if cached is not None and cached[0].same(values):
        return cached[1]
    decided = _decide_class(cls)
    _class_cache[cls] = ((_Held if _lives_forever(cls) else _Values)(values), decided)
    return decided


def _decide_class(cls: type) -> bool:
    saw_function = False
    for attr in list(cls.__dict__.values()):
        for fn in functions_in(attr):
            if is_user_function(fn):
                return True
            if not _generated_by_python(fn):
                saw_function = True
    if saw_function:
        return False
    return bool(_module_is_user(cls.__module__))  # unknown C-level classes: nothing to walk


def _first_function_decides(cls: type) -> bool:
    """The classification before issue #11 (kept for `settings.reach = False`)."""
    for attr in cls.__dict__.values():
        fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
        if isinstance(fn, types.FunctionType):
            return is_user_function(fn)
    return bool(_module_is_user(cls.__module__))


class TypeMemo:
    """`compute(cls)`, memoized per type, keeping no user class alive: a notebook's redefined
    class, its methods and the globals they read can be freed.

    Static types and a library module's own classes are held in a plain dict (looked up at C
    speed); any other class weakly.
    """

    __slots__ = ("_compute", "_strong", "_weak")

    def __init__(self, compute: Callable[[type], Any]) -> None:
        self._compute = compute
        self._strong: dict[type, Any] = {}
        self._weak: weakref.WeakKeyDictionary[type, Any] = weakref.WeakKeyDictionary()

    def __call__(self, cls: type) -> Any:
        try:
            return self._strong[cls]
        except KeyError:
            pass
        try:
            return self._weak[cls]
        except KeyError:
            pass
        value = self._compute(cls)
        (self._strong if _lives_forever(cls) else self._weak)[cls] = value
        return value
