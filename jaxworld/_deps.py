"""Dependency records: what a traced callable can reach, and whether it changed.

A jaxpr traced from a Python callable (the *origin*) bakes in everything Python
code read while tracing: helper functions, global constants, closure cells,
NumPy arrays, JAX configuration.  `DependencyRecord.capture(fun)` walks what
`fun` can reach *statically* and snapshots it; `record.changes()` walks again
from the same origin and lists what differs.  The walk over-approximates on
purpose: reporting something the trace did not really use costs a re-trace,
missing something it did use would silently serve a stale trace.

What is tracked
---------------
* Functions written by the user (code outside the stdlib, site-packages, jax,
  jaxlib, numpy and jaxworld itself): the identity of ``__code__``; every name
  in ``co_names`` of the code and of nested code objects (lambdas, inner
  functions, comprehensions), looked up in ``__globals__`` (a global that
  appears or disappears later is a change) or else in builtins; closure cells
  (so ``nonlocal`` rebinding is seen); ``__defaults__``, ``__kwdefaults__`` and
  the function's own ``__dict__`` (``__wrapped__`` of decorators).  User
  functions reached from any of these are walked in turn, once each.
* Library functions are compared by identity only, except that a
  ``__wrapped__`` attribute and closure cells holding user functions are
  followed, so ``jax.vmap(helper)`` / ``jax.grad(helper)`` still see ``helper``.
* Bound methods (``__func__`` and ``__self__``), ``functools.partial`` (func,
  args, keywords), ``property`` / ``staticmethod`` / ``classmethod``,
  ``jax.custom_jvp`` / ``jax.custom_vjp`` (their whole instance ``__dict__``:
  ``fun``, ``jvp``, ``fwd``, ``bwd``, ``nondiff_argnums``, ...), and objects with a
  ``__wrapped__`` attribute such as the result of ``jax.jit``.
* Values: None/bool/int/float/complex/str/bytes by type and value; tuples,
  lists, dicts, sets by content (recursively); ``numpy.ndarray`` by identity,
  dtype, shape and a blake2b digest of its bytes (so in-place mutation is seen);
  NumPy scalars and dtypes by value; ``jax.Array`` by identity (immutable).
* Modules by identity, plus ``module.attr`` for each name ``attr`` in the
  reading function's ``co_names`` that the module defines (monkeypatching and
  ``importlib.reload``).
* Instances of user classes: identity, type, instance ``__dict__`` and slots,
  and *every* attribute defined on user classes of the MRO (methods are walked),
  so replacing a method on the class is seen.  Instances of library classes:
  identity, plus the class/instance attributes named in the reader's
  ``co_names``.  A callable object used as the origin is handled the same way
  (its ``type(obj).__call__`` is walked as a class attribute).
* The JAX configuration that affects tracing (``jax_trace_config()``).

Out of reach (documented limitations)
-------------------------------------
* State mutated in place behind opaque objects (C extension types, objects of
  library classes whose fields are not named in ``co_names``, ``dict``/``list``
  *subclasses'* extra attributes, elements of object-dtype arrays, which are
  compared by identity only).
* Attributes reached with computed names (``getattr(obj, name)``), ``eval``,
  ``exec`` and ``globals()[name]`` lookups; attributes reached through a local
  variable that is not itself a global/cell/default (``self.x`` is covered only
  because instance fields of user objects are recorded wholesale).
* Globals of library code (a library function is not walked), and data read
  from files, environment variables or random number generators at trace time.
* A ``__getattr__``-provided module attribute (PEP 562) or a descriptor's
  computed value: the descriptor object is recorded, not what it returns.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import os
import sys
import sysconfig
import types
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple, Union

import jax
import numpy as np

try:
    from ._compat import jax_trace_config
except ImportError:  # the shared helper may not exist yet in a checkout
    from jax._src.config import trace_context as jax_trace_config

__all__ = ["Change", "DependencyRecord"]


class Change(NamedTuple):
    """One dependency whose snapshot no longer matches."""

    what: str  # the dependency and the path through which it was reached
    old: str  # short description of the value at capture time
    new: str  # short description of the value now
    where: str | None  # "file.py:12" / "notebook cell" for code; None when unknown


# ---------------------------------------------------------------------------
# Classifying code as "user" or "library"

def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    for mod in (jax, np, sys.modules.get("jaxlib")):
        if mod is not None and getattr(mod, "__file__", None):
            dirs.add(os.path.dirname(mod.__file__))
    dirs.add(os.path.dirname(os.path.abspath(__file__)))  # jaxworld's own code
    return tuple(sorted({os.path.join(os.path.realpath(d), "") for d in dirs}))


_LIBRARY_DIRS = _library_dirs()
_user_file_cache: dict[str, bool] = {}


def _is_user_file(filename: str) -> bool:
    """True when `filename` (a co_filename or module __file__) is user code."""
    cached = _user_file_cache.get(filename)
    if cached is None:
        if filename.startswith("<frozen "):  # frozen stdlib modules
            cached = False
        elif filename.startswith("<"):  # <string>, <ipython-input-...>, <stdin>
            cached = True
        else:
            real = os.path.realpath(filename)
            cached = not real.startswith(_LIBRARY_DIRS)
        _user_file_cache[filename] = cached
    return cached


def _is_user_function(fn: types.FunctionType) -> bool:
    return _is_user_file(fn.__code__.co_filename)


def _is_user_class(cls: type) -> bool:
    # A class defined by exec() in a notebook-like namespace reports
    # __module__ == "builtins", so the code of its methods decides first.
    for attr in cls.__dict__.values():
        fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
        if isinstance(fn, types.FunctionType):
            return _is_user_function(fn)
    mod = sys.modules.get(cls.__module__)
    if mod is None:
        return cls.__module__ != "builtins"
    file = getattr(mod, "__file__", None)
    if file is None:
        return mod.__name__ not in sys.builtin_module_names
    return _is_user_file(file)


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
    if "<ipython-input-" in name or "/ipykernel_" in name:
        return "notebook cell"
    return f"{os.path.basename(name)}:{code.co_firstlineno}"


# ---------------------------------------------------------------------------
# Snapshot tokens.  A token is compared with == against the token of the next
# walk; identity tokens hold weak references where possible so a record does
# not keep replaced helpers or arrays alive (and a dead referent never equals
# a live object, so id reuse cannot hide a change).

class _Ident:
    __slots__ = ("_get", "_id")

    def __init__(self, obj: Any, weak: bool) -> None:
        self._id = id(obj)
        getter: Callable[[], Any] | None = None
        if weak:
            try:
                getter = weakref.ref(obj)
            except TypeError:
                pass
        self._get = getter if getter is not None else (lambda: obj)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Ident) or self._id != other._id:
            return False
        mine = self._get()
        return mine is not None and mine is other._get()

    def __hash__(self) -> int:
        return self._id


class _TooDeep:
    """Token for a value nested beyond `_MAX_DEPTH`: never equal, so never trusted."""

    __eq__ = object.__eq__  # identity only: a fresh walk never matches
    __hash__ = object.__hash__


_MAX_DEPTH = 120  # nesting levels; each costs ~5 Python frames of recursion
_ABSENT = ("<absent>",)
_EMPTY_CELL = ("<empty cell>",)
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, dict, set, frozenset)
_BORING_CLASS_ATTRS = frozenset(
    {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__",
     "__slots__", "__firstlineno__", "__static_attributes__"})
_BORING_FUNCTION_ATTRS = frozenset({"__module__", "__name__", "__qualname__", "__doc__", "__annotations__"})


def _digest(data: Any) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _scalar_token(value: Any) -> tuple:
    if isinstance(value, (float, complex)):
        return (type(value), repr(value))  # repr: nan == nan, and -0.0 != 0.0
    if isinstance(value, (str, bytes)) and len(value) > 256:
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        return (type(value), len(value), _digest(raw))
    return (type(value), value)


def _array_digest(arr: np.ndarray) -> str:
    if arr.dtype.hasobject:  # pointers only: element objects by identity
        return _digest(np.array([id(x) for x in arr.ravel()], dtype=np.int64).tobytes())
    flat = np.ascontiguousarray(arr).reshape(-1)  # a view unless arr is non-contiguous
    try:
        return _digest(flat.view(np.uint8))
    except (ValueError, TypeError):  # zero-itemsize dtypes and the like
        return _digest(flat.tobytes())


def _instance_dict(obj: Any) -> dict:
    """`obj.__dict__` without triggering `__getattr__`; {} when there is none."""
    try:
        d = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return {}
    return d if isinstance(d, dict) else {}


_names_by_code: "weakref.WeakKeyDictionary[types.CodeType, tuple[str, ...]]" = weakref.WeakKeyDictionary()


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


def _short(value: Any, depth: int = 0) -> str:
    """A short, cheap description of a value (never a full repr of big things)."""
    if isinstance(value, tuple) and value in (_ABSENT, _EMPTY_CELL):
        return {_ABSENT: "<not defined>", _EMPTY_CELL: "<empty cell>"}[value]
    if isinstance(value, _SCALARS):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, np.ndarray):
        shape = ",".join(map(str, value.shape))
        return f"ndarray {value.dtype}[{shape}] (contents hash {_array_digest(value)[:8]})"
    if isinstance(value, jax.Array):
        shape = ",".join(map(str, value.shape))
        return f"jax.Array {value.dtype}[{shape}] at 0x{id(value):x}"
    if isinstance(value, (np.generic, np.dtype)):
        return repr(value)
    if isinstance(value, types.FunctionType):
        code = value.__code__
        return f"function {value.__qualname__} at {os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    if isinstance(value, types.CodeType):
        return f"code of {value.co_name} at {os.path.basename(value.co_filename)}:{value.co_firstlineno}"
    if isinstance(value, types.MethodType):
        return f"bound method {_short(value.__func__)} of {type(value.__self__).__qualname__} object"
    if isinstance(value, functools.partial):
        return f"functools.partial of {_short(value.func)}"
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    if isinstance(value, _CONTAINERS):
        kind = type(value).__qualname__
        if depth >= 1 or len(value) > 6:
            return f"{kind} of {len(value)} items"
        if isinstance(value, dict):
            parts = [f"{_short(k, 1)}: {_short(v, 1)}" for k, v in value.items()]
        else:
            parts = [_short(v, 1) for v in value]
        return f"{kind} [{', '.join(parts)}]"
    name = getattr(type(value), "__qualname__", type(value).__name__)
    label = _instance_dict(value).get("__qualname__")
    return f"{name} {label}" if isinstance(label, str) else f"{name} object at 0x{id(value):x}"


# ---------------------------------------------------------------------------
# The walk

class _What:
    """A dependency's description, built lazily from its parent's.

    Paths through nested objects can be long; composing the text only when a
    change is reported keeps each walk linear in the number of entries.
    """

    __slots__ = ("head", "parent", "tail")

    def __init__(self, head: str, parent: "str | _What", tail: str = "") -> None:
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


_Text = Union[str, _What]  # a description, possibly still lazy


@dataclass(slots=True)
class _Entry:
    key: tuple[str, ...]  # edge labels from the origin: stable between walks
    what: _Text
    kind: str  # "dep", "absent" (global not defined), "builtin", "config"
    token: Any = None
    text: str | None = None  # description, filled at capture
    value: Any = None  # the live value, kept only by a re-walk (transient)


class _Walker:
    """One walk from an origin: appends entries in a deterministic order."""

    def __init__(self, capture: bool) -> None:
        self.capture = capture  # capture: describe values now and hold them weakly
        self.entries: list[_Entry] = []
        self._done: dict[tuple, Any] = {}  # (id, tag) -> object, pinned so ids stay unique
        self._active: set[int] = set()  # containers being tokenized (cycle guard)
        self._depth = 0

    # -- bookkeeping -------------------------------------------------------
    def _once(self, obj: Any, tag: Any = None) -> bool:
        """True the first time (obj, tag) is expanded in this walk."""
        k = (id(obj), id(tag))
        if k in self._done:
            return False
        self._done[k] = (obj, tag)
        return True

    def record(self, key: tuple[str, ...], what: _Text, kind: str, token: Any, value: Any) -> _Entry:
        entry = _Entry(key, what, kind, token)
        self._fill(entry, value)
        self.entries.append(entry)
        return entry

    def _fill(self, entry: _Entry, value: Any) -> None:
        if self.capture:
            entry.text = _short(value)
        else:
            entry.value = value

    def visit(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
              names: tuple[str, ...], kind: str = "dep") -> Any:
        """Record `value` at `key`, expand what it reaches, return its token."""
        entry = _Entry(key, what, kind)
        self.entries.append(entry)  # before the children, so parents come first
        entry.token = self._token(value, key, what, trail, names)
        self._fill(entry, value)
        return entry.token

    # -- tokens --------------------------------------------------------------
    def _token(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
               names: tuple[str, ...]) -> Any:
        if isinstance(value, _SCALARS):
            return _scalar_token(value)
        if self._depth >= _MAX_DEPTH:
            # Deeper than the recursion we allow (a long linked structure):
            # unverifiable, so the record conservatively reports a change.
            return _TooDeep()
        self._depth += 1
        try:
            return self._compound_token(value, key, what, trail, names)
        finally:
            self._depth -= 1

    def _compound_token(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                        names: tuple[str, ...]) -> Any:
        if isinstance(value, np.ndarray):
            return ("ndarray", _Ident(value, self.capture), value.dtype, value.shape, _array_digest(value))
        if isinstance(value, np.generic):
            return (type(value), value.tobytes() if not isinstance(value, np.object_) else id(value))
        if isinstance(value, np.dtype):
            return (np.dtype, value)
        if isinstance(value, jax.Array):  # immutable: identity suffices
            return _Ident(value, self.capture)
        if isinstance(value, _CONTAINERS):
            return self._container_token(value, key, what, trail, names)
        self._expand(value, key, what, trail, names)
        if isinstance(value, types.MethodType):  # a fresh object per attribute access
            return ("method", _Ident(value.__func__, self.capture), _Ident(value.__self__, self.capture))
        return _Ident(value, self.capture)

    def _element(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                 names: tuple[str, ...]) -> Any:
        # Plain data is folded into the container's token; anything that can
        # be walked gets its own entry so its insides are reported precisely.
        if isinstance(value, _SCALARS + _CONTAINERS + (np.ndarray, np.generic, np.dtype, jax.Array)):
            return self._token(value, key, what, trail, names)
        return self.visit(value, key, what, trail, names)

    def _container_token(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                         names: tuple[str, ...]) -> Any:
        if id(value) in self._active:
            return ("<cycle>", type(value))
        self._active.add(id(value))
        try:
            if isinstance(value, dict):
                items = []
                for i, (k, v) in enumerate(list(value.items())):
                    label = f"[{k!r}]" if isinstance(k, (str, int)) and len(repr(k)) < 40 else f"[#{i}]"
                    k_tok = self._element(k, key + (label + ".key",), _What(f"key {label} of ", what), trail, names)
                    v_tok = self._element(v, key + (label,), _What(f"item {label} of ", what), trail, names)
                    items.append((k_tok, v_tok))
                return (type(value), tuple(items))
            elems = [self._element(v, key + (f"[{i}]",), _What(f"item [{i}] of ", what), trail, names)
                     for i, v in enumerate(list(value))]
            if isinstance(value, (set, frozenset)):
                try:
                    return (type(value), frozenset(elems))
                except TypeError:  # an unhashable token: fall back to order
                    pass
            return (type(value), tuple(elems))
        finally:
            self._active.discard(id(value))

    # -- expansion of things that are not plain data -------------------------
    def _expand(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                names: tuple[str, ...]) -> None:
        if isinstance(value, types.FunctionType):
            if not self._once(value):
                return
            if _is_user_function(value):
                self.walk_function(value, key, trail)
            else:
                self._library_function(value, key, what, trail, names)
        elif isinstance(value, types.MethodType):
            if self._once(value):
                self.visit(value.__func__, key + ("__func__",), _What("function of ", what), trail, names)
                self.visit(value.__self__, key + ("__self__",), _What("object bound to ", what), trail, names)
        elif isinstance(value, (functools.partial, functools.partialmethod)):
            if self._once(value):
                self.visit(value.func, key + ("func",), _What("function of ", what), trail, names)
                self.visit(value.args, key + ("args",), _What("arguments of ", what), trail, names)
                self.visit(value.keywords, key + ("keywords",), _What("keyword arguments of ", what), trail, names)
        elif isinstance(value, (staticmethod, classmethod)):
            self.visit(value.__func__, key + ("__func__",), _What("function of ", what), trail, names)
        elif isinstance(value, property):
            for part in ("fget", "fset", "fdel"):
                self.visit(getattr(value, part), key + (part,), _What(f"{part} of ", what), trail, names)
        elif isinstance(value, functools.cached_property):
            self.visit(value.func, key + ("func",), _What("function of ", what), trail, names)
        elif isinstance(value, types.ModuleType):
            self._module_attrs(value, key, what, trail, names)
        elif isinstance(value, type):
            self._class(value, key, what, trail, names)
        elif isinstance(value, (jax.custom_jvp, jax.custom_vjp)):
            # fun / jvp (set by defjvp) / fwd, bwd (set by defvjp) / nondiff_argnums
            # ... all live in the instance __dict__; record it whole.
            if self._once(value):
                self._fields(value, key, what, trail, names, skip=_BORING_FUNCTION_ATTRS)
        else:
            self._object(value, key, what, trail, names)

    def walk_function(self, fn: types.FunctionType, key: tuple[str, ...], trail: tuple[str, ...]) -> None:
        """Code, globals, builtins, cells, defaults and attributes of a user function."""
        trail = trail + (fn.__qualname__,)
        via = " -> ".join(trail)
        code = fn.__code__
        names = _code_names(code)
        self.record(key + ("__code__",), f"code of {via}", "dep", _Ident(code, self.capture), code)
        namespace = fn.__globals__
        module = namespace.get("__name__", "<namespace>")
        builtin_ns = fn.__builtins__ if isinstance(fn.__builtins__, dict) else vars(builtins)
        for name in names:
            gkey = key + ("global", name)
            if name in namespace:
                self.visit(namespace[name], gkey, f"global '{name}' of module '{module}' (read by {via})",
                           trail, names)
                continue
            # Recorded so that a global defined later (shadowing a builtin,
            # or satisfying a NameError-guarded path) is seen as a change.
            self.record(gkey, f"global '{name}' of module '{module}' (read by {via})", "absent",
                        _ABSENT, _ABSENT)
            if name in builtin_ns:
                self.visit(builtin_ns[name], key + ("builtin", name), f"builtin '{name}' (read by {via})",
                           trail, names, kind="builtin")
        for var, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                content = cell.cell_contents
            except ValueError:  # not yet assigned
                content = _EMPTY_CELL
            self.visit(content, key + ("cell", var), f"closure variable '{var}' of {via}", trail, names)
        self.visit(fn.__defaults__, key + ("__defaults__",), f"default arguments of {via}", trail, names)
        self.visit(fn.__kwdefaults__, key + ("__kwdefaults__",), f"keyword defaults of {via}", trail, names)
        for attr, value in list(fn.__dict__.items()):
            if attr not in _BORING_FUNCTION_ATTRS:
                self.visit(value, key + ("attr", attr), f"attribute '{attr}' of {via}", trail, names)

    def _library_function(self, fn: types.FunctionType, key: tuple[str, ...], what: _Text,
                          trail: tuple[str, ...], names: tuple[str, ...]) -> None:
        # Not walked, but transformations (jax.vmap, jax.grad, decorators) keep
        # the user function in __wrapped__ or a closure cell: follow those.
        wrapped = fn.__dict__.get("__wrapped__")
        if wrapped is not None:
            self.visit(wrapped, key + ("__wrapped__",), _What("function wrapped by ", what), trail, names)
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                content = cell.cell_contents
            except ValueError:
                continue
            if content is not wrapped and (
                    (isinstance(content, types.FunctionType) and _is_user_function(content))
                    or isinstance(content, (functools.partial, types.MethodType))):
                self.visit(content, key + ("cell", var), _What(f"closure variable '{var}' of ", what), trail, names)

    def _module_attrs(self, module: types.ModuleType, key: tuple[str, ...], what: _Text,
                      trail: tuple[str, ...], names: tuple[str, ...]) -> None:
        # `m.attr` patterns: every co_name of the reader that the module defines.
        if not self._once(module, names):
            return
        namespace = _instance_dict(module)
        for name in names:
            if name in namespace:
                self.visit(namespace[name], key + ("attr", name), _What(f"attribute '{name}' of ", what), trail, names)

    def _class(self, cls: type, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
               names: tuple[str, ...]) -> None:
        if not _is_user_class(cls):
            if self._once(cls, names):
                self._named_class_attrs(cls, key, what, trail, names)
            return
        if not self._once(cls):
            return
        # Reassigning __bases__ changes what every attribute lookup resolves to.
        self.record(key + ("__mro__",), _What("base classes of ", what), "dep",
                    tuple(_Ident(k, self.capture) for k in cls.__mro__), cls.__mro__)
        for klass in cls.__mro__:
            if klass is object:
                continue
            if klass is not cls and not _is_user_class(klass):
                continue  # library bases: their attributes named by the reader, below
            for name, attr in list(klass.__dict__.items()):
                if name not in _BORING_CLASS_ATTRS:
                    self.visit(attr, key + (klass.__qualname__, name),
                               _What(f"attribute '{name}' of class '{klass.__qualname__}' (", what, ")"), trail, names)
        self._named_class_attrs(cls, key, what, trail, names)

    def _named_class_attrs(self, cls: type, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                           names: tuple[str, ...]) -> None:
        """Attributes the reader names, resolved through the MRO (library classes)."""
        for name in names:
            for klass in cls.__mro__:
                if name in klass.__dict__:
                    if _is_user_class(klass):
                        break  # already recorded wholesale
                    attr = klass.__dict__[name]
                    self.visit(attr, key + ("resolve", name),
                               _What(f"attribute '{name}' of class '{cls.__qualname__}' (", what, ")"), trail, names)
                    break

    def _object(self, obj: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                names: tuple[str, ...]) -> None:
        if isinstance(obj, (types.BuiltinFunctionType, types.WrapperDescriptorType,
                            types.MethodDescriptorType, types.GetSetDescriptorType,
                            types.MemberDescriptorType)):
            return  # C-level callables and slots: nothing behind them to walk
        cls = type(obj)
        if _is_user_class(cls):
            if self._once(obj):
                self.visit(cls, key + ("__class__",), _What("class of ", what), trail, names)
                self._fields(obj, key, what, trail, names)
            return
        # Library object: only what the reader can name, plus __wrapped__ (jax.jit).
        if not self._once(obj, names):
            return
        self._named_class_attrs(cls, key, what, trail, names)
        fields = _instance_dict(obj)
        for name in names:
            if name in fields:
                self.visit(fields[name], key + ("field", name), _What(f"field '{name}' of ", what), trail, names)
        wrapped = fields.get("__wrapped__")
        if wrapped is not None and "__wrapped__" not in names:
            self.visit(wrapped, key + ("__wrapped__",), _What("function wrapped by ", what), trail, names)

    def _fields(self, obj: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                names: tuple[str, ...], skip: Iterable[str] = ()) -> None:
        """Instance __dict__ and __slots__ of an object, each field recorded."""
        for name, value in list(_instance_dict(obj).items()):
            if name not in skip:
                self.visit(value, key + ("field", name), _What(f"field '{name}' of ", what), trail, names)
        for klass in type(obj).__mro__:
            slots = klass.__dict__.get("__slots__", ())
            for name in [slots] if isinstance(slots, str) else slots:
                descriptor = klass.__dict__.get(name)
                if name in ("__dict__", "__weakref__") or not hasattr(descriptor, "__get__"):
                    continue
                try:
                    value = descriptor.__get__(obj, klass)
                except AttributeError:
                    value = _EMPTY_CELL
                self.visit(value, key + ("slot", klass.__qualname__, name), _What(f"slot '{name}' of ", what),
                           trail, names)

    # -- entry point ---------------------------------------------------------
    def walk(self, origin: Any) -> None:
        config = jax_trace_config()
        self.record(("jax config",), "JAX configuration", "config", config, config)
        self.visit(origin, ("origin",), f"traced callable {_short(origin)}", (), ())


# ---------------------------------------------------------------------------
# The record

def _same(old: Any, new: Any) -> bool:
    try:
        return bool(old == new)
    except Exception:  # exotic __eq__ (e.g. in a config value): assume changed
        return False


def _config_diff(old: tuple, new: tuple) -> tuple[str, str]:
    """Name the differing configuration entries when their positions are known."""
    try:
        from jax._src.config import trace_context_names
        labels = list(trace_context_names())
    except Exception:
        labels = []
    if not (isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new)):
        return (f"{len(old)} settings", f"{len(new)} settings")
    if len(labels) != len(old):
        labels = [f"setting #{i}" for i in range(len(old))]
    diffs = [i for i, (a, b) in enumerate(zip(old, new)) if not _same(a, b)]
    return (", ".join(f"{labels[i]}={_short(old[i])}" for i in diffs),
            ", ".join(f"{labels[i]}={_short(new[i])}" for i in diffs))


def _is_below(key: tuple[str, ...], reported: set[tuple[str, ...]]) -> bool:
    return any(key[:i] in reported for i in range(1, len(key)))


class DependencyRecord:
    """A snapshot of everything a callable can reach that can change its trace.

    `capture(fun)` walks `fun` now; `changes()` walks again from the same
    origin and returns one `Change` per top-most difference (what lies under a
    changed helper is not reported separately).  The origin is held weakly
    when Python allows it (pass ``strong=True`` to hold it strongly); if it
    has been garbage collected, `changes()` says so.
    """

    def __init__(self, origin_ref: Callable[[], Any], origin_text: str, entries: list[_Entry]) -> None:
        self._origin_ref = origin_ref
        self._origin_text = origin_text
        self._entries = entries

    @classmethod
    def capture(cls, fun: Any, *, strong: bool = False) -> "DependencyRecord":
        """Snapshot everything `fun` can reach that can change a trace."""
        walker = _Walker(capture=True)
        walker.walk(fun)
        ref: Callable[[], Any] | None = None
        if not strong:
            try:
                ref = weakref.WeakMethod(fun) if isinstance(fun, types.MethodType) else weakref.ref(fun)
            except TypeError:
                pass
        if ref is None:
            ref = lambda: fun  # noqa: E731 - a strong reference with the same interface
        return cls(ref, _short(fun), walker.entries)

    def changes(self) -> list[Change]:
        """What differs from the snapshot; [] when the record still holds."""
        origin = self._origin_ref()
        if origin is None:
            return [Change(f"traced callable {self._origin_text}", self._origin_text,
                           "<garbage collected>", None)]
        walker = _Walker(capture=False)
        walker.walk(origin)
        old = {e.key: e for e in self._entries}
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
            old_text = before.text if before is not None else "<not a dependency before>"
            out.append(Change(str(entry.what), old_text or "?", _short(entry.value), _where(entry.value)))
        for entry in self._entries:  # dependencies the new walk no longer reaches
            if entry.key not in seen and not _is_below(entry.key, reported) and entry.key not in reported:
                reported.add(entry.key)
                out.append(Change(str(entry.what), entry.text or "?", "<no longer reached>", None))
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
                lines.append(f"JAX configuration ({len(entry.token)} trace-affecting settings)")
            elif not (entry.key[-1] in ("__defaults__", "__kwdefaults__") and entry.token == (type(None), None)):
                lines.append(f"{entry.what} = {entry.text}")
        if builtin_names:
            lines.append("builtins: " + ", ".join(dict.fromkeys(builtin_names)))
        if absent:
            lines.append("names watched in case they become globals: " + ", ".join(dict.fromkeys(absent)))
        return lines

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<DependencyRecord of {self._origin_text}: {len(self)} entries>"
