"""Snapshot tokens and short descriptions.

A token is compared with ``==`` against the token of the next walk. Identity tokens hold weak
references where possible so a record does not keep replaced helpers or arrays alive (and a dead
referent never equals a live object, so id reuse cannot hide a change).
"""

from __future__ import annotations

import array
import collections
import functools
import hashlib
import keyword
import os
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from .._text import is_notebook_cell
from ._arrays import array_digest as _array_digest  # ndarray digests live in _arrays (issue #13)


def _weak(obj: Any) -> weakref.ref | None:
    """A weak reference to `obj`, or None where Python cannot refer to it weakly.

    The type is asked first: a `try` alone costs an exception per None, int or tuple.
    """
    if type(obj).__weakrefoffset__:
        try:
            return weakref.ref(obj)
        except TypeError:
            pass
    return None


class _Ident:
    __slots__ = ("_get", "_id")

    def __init__(self, obj: Any, weak: bool) -> None:
        self._id = id(obj)
        getter = _weak(obj) if weak else None
        self._get = getter if getter is not None else (lambda: obj)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Ident) or self._id != other._id:
            return False
        mine = self._get()
        return mine is not None and mine is other._get()

    def __hash__(self) -> int:
        return self._id


class _Unverifiable:
    """Token for a value the walk could not inspect (nested beyond `_MAX_DEPTH`,
    or an inspection raised): never equal to anything, so a record holding one
    always reports a change -- a needless re-trace rather than a stale one."""

    __eq__ = object.__eq__  # identity only: a fresh walk never matches
    __hash__ = object.__hash__


_MAX_DEPTH = 100  # nesting levels; each costs ~6 Python frames of recursion
_ABSENT = ("<absent>",)
_EMPTY_CELL = ("<empty cell>",)
_NONE_TOKEN = (type(None), None)
_CUSTOM_RULE_FIELDS = ("fun", "jvp", "fwd", "bwd", "nondiff_argnums", "nondiff_argnames",
                       "symbolic_zeros", "optimize_remat")
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, dict, set, frozenset)
# Element-holding types that are not builtin containers but are read the same way: a deque like a
# list, a mappingproxy like the dict behind it (issue #11: session 11's probes).
_MORE_CONTAINERS = (collections.deque, types.MappingProxyType)
_BUFFERS = (bytearray, array.array)  # mutable bytes: their contents are the token
_BUFFER_BYTES_KEPT = 1 << 16  # up to this size a buffer's token holds its bytes, beyond a digest
_BORING_CLASS_ATTRS = frozenset(
    {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__",
     "__slots__", "__firstlineno__", "__static_attributes__",
     # dataclasses' bookkeeping: the defaults it holds are the class attributes themselves.
     "__dataclass_params__", "__dataclass_fields__", "__match_args__"})
_BORING_FUNCTION_ATTRS = frozenset(
    {"__module__", "__name__", "__qualname__", "__doc__", "__annotations__"})



def _digest(data: Any) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _scalar_token(value: Any) -> tuple:
    if isinstance(value, (float, complex)):
        return (type(value), repr(value))  # repr: nan == nan, and -0.0 != 0.0
    if isinstance(value, (str, bytes)) and len(value) > 256:
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        return (type(value), len(value), _digest(raw))
    return (type(value), value)


_thread_local = threading.local


def _instance_dict(obj: Any) -> dict:
    """`obj.__dict__` without triggering `__getattr__`; {} when there is none.

    A `threading.local` keeps one dict per thread, which only its own attribute lookup finds:
    this thread's dict.
    """
    try:
        d = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        if not isinstance(obj, _thread_local):
            return {}
        try:
            d = _thread_local.__getattribute__(obj, "__dict__")
        except AttributeError:
            return {}
    return d if isinstance(d, dict) else {}


_Environ = type(os.environ)


def _environ_items(value: Any) -> dict:
    """The variables of `os.environ` (or another `os._Environ`), as stored (no decoding)."""
    data = getattr(value, "_data", None)
    return dict(data) if isinstance(data, dict) else dict(value)


def _buffer_token(value: bytearray | array.array) -> tuple:
    """A mutable buffer's contents (its bytes, or their digest when large) and item type."""
    kind = value.typecode if isinstance(value, array.array) else "B"
    data = memoryview(value).cast("B")
    if data.nbytes <= _BUFFER_BYTES_KEPT:
        return (type(value), kind, bytes(data))
    return (type(value), kind, data.nbytes, _digest(data))


_names_by_code: weakref.WeakKeyDictionary[types.CodeType, tuple[str, ...]] = (
    weakref.WeakKeyDictionary())


def _code_names(code: types.CodeType) -> tuple[str, ...]:
    """co_names of `code` and of its nested code objects, in a stable order (cached per code)."""
    cached = _names_by_code.get(code)
    if cached is not None:
        return cached
    names: dict[str, None] = {}
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(dict.fromkeys(c.co_names))
        stack.extend(reversed([k for k in c.co_consts if isinstance(k, types.CodeType)]))
    result = _names_by_code[code] = tuple(names)
    return result


_strings_by_code: weakref.WeakKeyDictionary[types.CodeType, tuple[str, ...]] = (
    weakref.WeakKeyDictionary())


def _code_strings(code: types.CodeType) -> tuple[str, ...]:
    """String constants of `code` (and its nested code) that are identifiers, not in co_names.

    They are names read at run time: ``globals()["SCALE"]``, ``getattr(cfg, "scale")``,
    ``vars(K)["s"]``, ``os.environ["SCALE"]``, ``eval("SCALE")``. A name computed at run time
    (``"s" + suffix``) is not among them.
    """
    cached = _strings_by_code.get(code)
    if cached is not None:
        return cached
    names = dict.fromkeys(_code_names(code))
    found: dict[str, None] = {}
    stack = [code]
    while stack:
        c = stack.pop()
        for k in c.co_consts:
            if type(k) is str:
                if k.isidentifier() and not keyword.iskeyword(k) and k not in names:
                    found[k] = None
            elif isinstance(k, types.CodeType):
                stack.append(k)
            elif type(k) is tuple:  # constant tuples: getattr(obj, name) for name in ("a", "b")
                found.update((e, None) for e in k if type(e) is str and e.isidentifier()
                             and not keyword.iskeyword(e) and e not in names)
    result = _strings_by_code[code] = tuple(found)
    return result


def _short(value: Any, depth: int = 0, digest: str | None = None) -> str:
    """A short, cheap description of a value (never a full repr of big things)."""
    if isinstance(value, tuple) and value in (_ABSENT, _EMPTY_CELL):
        return {_ABSENT: "<not defined>", _EMPTY_CELL: "<empty cell>"}[value]
    if isinstance(value, _SCALARS):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, np.ndarray):
        shape = ",".join(map(str, value.shape))
        digest = digest or _array_digest(value)
        return f"ndarray {value.dtype}[{shape}] (contents hash {digest[:8]})"
    if isinstance(value, jax.Array):
        return _jax_array_text(value.dtype, value.shape, id(value))
    if isinstance(value, (np.generic, np.dtype)):
        return repr(value)
    if isinstance(value, types.FunctionType):
        code = value.__code__
        return (f"function {value.__qualname__} at "
                f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}")
    if isinstance(value, types.CodeType):
        return (f"code of {value.co_name} at "
                f"{os.path.basename(value.co_filename)}:{value.co_firstlineno}")
    if isinstance(value, types.MethodType):
        return (f"bound method {_short(value.__func__)} of "
                f"{type(value.__self__).__qualname__} object")
    if isinstance(value, functools.partial):
        return f"functools.partial of {_short(value.func)}"
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    if isinstance(value, _BUFFERS):
        return f"{type(value).__qualname__} of {len(value)} items"
    if isinstance(value, _CONTAINERS + _MORE_CONTAINERS):
        kind = type(value).__qualname__
        if depth >= 1 or len(value) > 6:
            return f"{kind} of {len(value)} items"
        if isinstance(value, (dict, types.MappingProxyType)):
            parts = [f"{_short(k, 1)}: {_short(v, 1)}" for k, v in value.items()]
        else:
            parts = [_short(v, 1) for v in value]
        return f"{kind} [{', '.join(parts)}]"
    name = getattr(type(value), "__qualname__", type(value).__name__)
    label = _instance_dict(value).get("__qualname__")
    return f"{name} {label}" if isinstance(label, str) else f"{name} object at 0x{id(value):x}"


class _Later:
    """A short description formatted only when it is shown (`str`).

    A walk describes every value it records, and nearly every description is only ever read if
    that value changes. For values whose description cannot change later (code, a function's name
    and code, a class's name, a scalar), the parts are kept now and formatted on demand; the others
    (NumPy arrays, containers, objects) are described at once, as `_short` does.
    """

    __slots__ = ("format", "parts")

    def __init__(self, format: Callable[..., str], *parts: Any) -> None:
        self.format, self.parts = format, parts

    def __str__(self) -> str:
        return self.format(*self.parts)


def _function_text(qualname: str, code: types.CodeType) -> str:
    return f"function {qualname} at {os.path.basename(code.co_filename)}:{code.co_firstlineno}"


def _code_text(code: types.CodeType) -> str:
    return f"code of {code.co_name} at {os.path.basename(code.co_filename)}:{code.co_firstlineno}"


def _jax_array_text(dtype: Any, shape: tuple[int, ...], ident: int) -> str:
    return f"jax.Array {dtype}[{','.join(map(str, shape))}] at 0x{ident:x}"


def _scalar_text(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_LATER_SCALARS = frozenset({type(None), bool, int, float, complex})


def _short_later(value: Any, digest: str | None = None) -> str | _Later:
    """`_short(value)`, deferred where the description cannot change (see `_Later`)."""
    cls = type(value)
    if cls is types.FunctionType:
        return _Later(_function_text, value.__qualname__, value.__code__)
    if cls is types.CodeType:
        return _Later(_code_text, value)
    if cls in _LATER_SCALARS or (cls in (str, bytes) and len(value) <= 256):
        return _Later(_scalar_text, value)
    if cls is types.ModuleType:
        return _Later("module {}".format, value.__name__)
    if isinstance(value, type):
        return _Later("class {}.{}".format, value.__module__, value.__qualname__)
    if isinstance(value, jax.Array):  # immutable; formatting its dtype alone costs ~9 us
        return _Later(_jax_array_text, value.dtype, value.shape, id(value))
    return _short(value, digest=digest)


class _What:
    """A dependency's description, built lazily from its parent's.

    Paths through nested objects can be long; composing the text only when a
    change is reported keeps each walk linear in the number of entries.
    """

    __slots__ = ("head", "parent", "tail")

    def __init__(self, head: str, parent: str | _What, tail: str = "") -> None:
        self.head, self.parent, self.tail = head, parent, tail

    def __str__(self) -> str:
        heads: list[str] = []
        tails: list[str] = []
        node: str | _What = self
        while isinstance(node, _What):  # iterative: chains may be deep
            heads.append(node.head)
            tails.append(node.tail)
            node = node.parent
        return "".join(heads) + node + "".join(reversed(tails))


_Text = str | _What  # a description, possibly still lazy


def _where(value: Any) -> str | None:
    """Where the definition of `value` comes from, when it is code."""
    if isinstance(value, (types.MethodType, staticmethod, classmethod)):
        value = value.__func__
    elif isinstance(value, functools.partial):
        value = value.func
    elif isinstance(value, (jax.custom_jvp, jax.custom_vjp)):
        value = value.fun
    if not isinstance(value, (types.FunctionType, types.CodeType)):
        wrapped = _instance_dict(value).get("__wrapped__")
        if wrapped is None:
            return None
        value = wrapped
    code = value.__code__ if isinstance(value, types.FunctionType) else value
    if not isinstance(code, types.CodeType):
        return None
    name = code.co_filename
    if is_notebook_cell(name):
        return "notebook cell"
    return f"{os.path.basename(name)}:{code.co_firstlineno}"


