"""Dependency records: what a traced callable can reach, and whether it changed.

A jaxpr traced from a Python callable (the *origin*) bakes in everything Python
code read while tracing: helper functions, global constants, closure cells,
NumPy arrays, JAX configuration.  `DependencyRecord.capture(fun)` walks what
`fun` can reach *statically* and snapshots it; `record.changes()` walks again
from the same origin and lists what differs (only the top-most difference on
each path: a redefined helper is reported once, not with all its insides).
The walk over-approximates on purpose: reporting something the trace did not
use costs a re-trace; missing something it did use would serve a stale trace.

What is tracked
---------------
* User functions (code outside the stdlib, site-packages, jax, jaxlib, numpy
  and jaxworld itself; exec'd/notebook code counts as user code): identity of
  ``__code__``; every name in ``co_names`` of the code and of nested code
  objects (lambdas, inner functions, comprehensions), looked up in
  ``__globals__`` -- a global appearing or disappearing later is a change --
  or else in builtins; closure cells (``nonlocal`` rebinding); ``__defaults__``,
  ``__kwdefaults__``; the function's ``__dict__`` (``__wrapped__``).  User
  functions reached from any of these are walked in turn, each once per walk
  (so recursion terminates).
* Library functions: identity only, but their ``__wrapped__`` and closure cells
  holding user functions are followed (``jax.vmap(helper)``, ``jax.grad(...)``).
* Bound methods (``__func__``, ``__self__``), ``functools.partial`` (func, args,
  keywords), ``property``/``staticmethod``/``classmethod``, objects with a
  ``__wrapped__`` attribute such as ``jax.jit(f)``, and ``jax.custom_jvp`` /
  ``jax.custom_vjp`` (fields ``fun``, ``jvp``, ``fwd``, ``bwd``,
  ``nondiff_argnums``, ``symbolic_zeros``, ...: calling ``defjvp`` again is seen).
* Values: None/bool/int/float/complex/str/bytes by type and value; tuple, list,
  dict, set by contents, recursively; ``numpy.ndarray`` by identity, dtype,
  shape and a blake2b digest of its bytes (in-place mutation is seen); NumPy
  scalars and dtypes by value; ``jax.Array`` by identity (it is immutable).
* Modules by identity, plus ``module.attr`` for each ``co_names`` entry of the
  reader that the module defines (monkeypatching, ``importlib.reload``).
* Instances of user classes (the origin itself may be one, e.g. a callable
  model): identity, class, instance ``__dict__`` and slots, and *every*
  attribute defined by user classes in the MRO (methods walked; replacing a
  method on the class is seen).  Library-class instances: identity plus the
  class/instance attributes named in the reader's ``co_names``.
* The JAX configuration that affects tracing (``jax_trace_config()``).

Out of reach (limitations)
--------------------------
* State mutated in place behind opaque objects: C extension types, library
  objects' fields the reader does not name, elements of object-dtype arrays
  (compared by identity), extra attributes of ``list``/``dict`` subclasses.
* Names computed at run time: ``getattr(obj, name)``, ``globals()[name]``,
  ``eval``/``exec``; module attributes served by a module ``__getattr__``;
  values computed by descriptors (the descriptor is recorded, not its result).
* Globals of library code (library functions are not walked); user code
  installed into site-packages counts as library code.
* Data read from files, environment variables or RNGs while tracing.
* Values nested deeper than `_MAX_DEPTH` or that raise when inspected cannot
  be verified; they are reported as changed on every check (safe, not fast).

Cost: a record that still holds is usually confirmed by its *guards* (see
"Guards" below): every place the walk read is read again and compared by
object identity, most of them at C speed (~1 us per namespace; 5-15 us for a
small model's record, where a walk takes 25-50 us).  A guard that fails only
means "maybe changed": `changes()` then walks, linear in the reachable
objects, plus hashing the bytes of every reachable NumPy array (pass a shared
``memo`` dict to the records checked in one `advance()` to hash shared arrays
once), and re-arms the guards when the walk finds nothing.  The guards keep
the objects they compare alive (strongly where Python cannot refer to them
weakly, e.g. a list read from a global; otherwise weakly, and the death of
any of them disarms the guards, so an id seen again is the same object).
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import itertools
import operator
import os
import sys
import sysconfig
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import numpy as np

from ._compat import jax_trace_config, jax_trace_config_values

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
    # Otherwise the module decides; extension types often name a submodule
    # that is not in sys.modules ("jaxlib._jax.pytree"), so try its parents.
    parts = str(cls.__module__).split(".")
    while parts:
        mod = sys.modules.get(".".join(parts))
        if mod is not None:
            file = getattr(mod, "__file__", None)
            if file is None:  # built-in module, or a notebook's __main__
                return mod.__name__ not in sys.builtin_module_names
            return _is_user_file(file)
        parts.pop()
    return False  # an unknown C-level class: nothing in it can be walked anyway


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


class _Unverifiable:
    """Token for a value the walk could not inspect (nested beyond `_MAX_DEPTH`,
    or an inspection raised): never equal to anything, so a record holding one
    always reports a change -- a needless re-trace rather than a stale one."""

    __eq__ = object.__eq__  # identity only: a fresh walk never matches
    __hash__ = object.__hash__


# Set by the test suite (tests/conftest.py): whenever the guards say "unchanged", walk as well and
# fail loudly if the walk disagrees.
_VERIFY_GUARDS = os.environ.get("JAXWORLD_VERIFY_GUARDS") == "1"
_MAX_DEPTH = 100  # nesting levels; each costs ~6 Python frames of recursion
_ABSENT = ("<absent>",)
_EMPTY_CELL = ("<empty cell>",)
_NONE_TOKEN = (type(None), None)
_CUSTOM_RULE_FIELDS = ("fun", "jvp", "fwd", "bwd", "nondiff_argnums", "nondiff_argnames",
                       "symbolic_zeros", "optimize_remat")
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, dict, set, frozenset)
_BORING_CLASS_ATTRS = frozenset(
    {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__",
     "__slots__", "__firstlineno__", "__static_attributes__"})
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
        shape = ",".join(map(str, value.shape))
        return f"jax.Array {value.dtype}[{shape}] at 0x{id(value):x}"
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


@dataclass(slots=True)
class _Entry:
    key: tuple[str, ...]  # edge labels from the origin: stable between walks
    what: _Text
    kind: str  # "dep", "absent" (global not defined), "builtin", "config"
    token: Any = None
    text: str | None = None  # description, filled at capture
    value: Any = None  # the live value, kept only by a re-walk (transient)


# ---------------------------------------------------------------------------
# Guards: a fast, exact "nothing changed"
#
# A walk is a function of the objects it reads.  While walking, the walker can
# also log every read as a *guard*: how to read the same place again, and a
# check that what is read there now is the very object read before (for lists,
# dicts, sets and NumPy arrays: with the same contents; for a class that could
# be reassigned, of the same class).  When every guard holds, a new walk would
# read the same objects and produce the same entries, so the record holds
# without walking.  When one fails, `changes()` walks and decides exactly (an
# equal value bound anew fails a guard but is no change).  Guards hold what
# they read from weakly when Python allows, like the tokens.

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: instances of such classes can be given another class


class _NotGuardable(Exception):
    """A value the guards cannot follow (nested too deeply): the record walks every time."""


def _holder(obj: Any) -> Callable[[], Any]:
    """A zero-argument function returning `obj`: a weak reference when Python allows.

    A dead one returns None; every read through it then raises or reads something else, so the
    guard fails (`_live`, where a read of None could look like a read of `obj`).
    """
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _live(obj: Any) -> Any:
    if obj is None:
        raise ReferenceError("a guard reads from an object that was freed")
    return obj


def _is(obj: Any) -> Callable[[Any], bool]:
    """`check(current)`: `current` is `obj` itself (held weakly when Python allows)."""
    try:
        ref = weakref.ref(obj)
    except TypeError:
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


def _content_checker(value: Any, depth: int) -> Callable[[Any], bool] | None:
    """What of `value` a token folds in beyond its identity (mirrors `_container_token`)."""
    if isinstance(value, np.ndarray):
        dtype, shape, digest = value.dtype, value.shape, _array_digest(value)
        return lambda a: a.dtype == dtype and a.shape == shape and _array_digest(a) == digest
    if not isinstance(value, (tuple, list, dict, set)):
        return None  # scalars, frozensets (hashable elements only), objects: identity says it all
    if depth >= _MAX_DEPTH:
        raise _NotGuardable
    if isinstance(value, set):
        members = tuple(value)  # held: their ids stay theirs
        ids = frozenset(map(id, members))
        return lambda current: len(current) == len(ids) and frozenset(map(id, current)) == ids
    if isinstance(value, tuple):  # its elements are fixed: only their own contents can change
        inner = tuple((i, c) for i, v in enumerate(value)
                      if (c := _content_checker(v, depth + 1)) is not None)
        if not inner:
            return None
        return lambda current: all(check(current[i]) for i, check in inner)
    if isinstance(value, dict):
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
            return klass, klass.__dict__[name], _is_user_class(klass)
    return _ABSENT


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
    return ((isinstance(content, types.FunctionType) and _is_user_function(content))
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
        try:
            self.weak.append(weakref.ref(value))
        except TypeError:
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


class _Walker:
    """One walk from an origin: appends entries in a deterministic order."""

    def __init__(self, capture: bool, memo: dict | None = None, guards: bool = False) -> None:
        self.capture = capture  # capture: describe values now and hold them weakly
        self._memo = {} if memo is None else memo  # id(array) -> (array, digest)
        self.entries: list[_Entry] = []
        self._done: dict[tuple, Any] = {}  # (id, tag) -> object, pinned so ids stay unique
        self._active: set[int] = set()  # containers being tokenized (cycle guard)
        self._depth = 0
        # When asked for and the walk can be guarded (see "Guards").
        self.guards: _Guards | None = _Guards() if guards else None
        self.verifiable = True  # False once a token is `_Unverifiable`

    def guard(self, read: _In | Callable[[], Any] | None, value: Any,
              check: Callable[[Any], bool] | None = None) -> None:
        """Log a read of `value`: `read()` must give `value` again (`check(read())`, if given).

        `read=None`: a place that cannot be rebound; only the contents of `value` are guarded.
        """
        g = self.guards
        if g is None:
            return
        try:
            content = None if check is not None else _content_checker(value, 0)
        except _NotGuardable:
            self.guards = None
            return
        if isinstance(read, _In):
            if check is None:
                group = g.groups.get(read.source)
                if group is None:
                    group = g.groups[read.source] = (read.namespace, [], [])
                group[1].append(read.name)
                group[2].append(g.ident(value))
                if content is None:
                    return
                read = None  # the identity is in the group; the contents are checked below
            else:
                namespace, name = read.namespace, read.name
                read = lambda: namespace().get(name, _ABSENT)  # noqa: E731
        if check is not None:
            g.checks.append(lambda: check(read()))
        elif read is None:
            if content is not None:
                held = _holder(value)
                g.checks.append(lambda: content(held()))
        else:
            g.reads.append(read)
            g.read_ids.append(g.ident(value))
            if content is not None:
                held = _holder(value)
                g.checks.append(lambda: content(held()))

    def unverifiable(self) -> None:
        """A value could not be inspected: the record reports a change at every check."""
        self.verifiable = False
        self.guards = None

    def finished_guards(self) -> _Guards | None:
        return None if self.guards is None else self.guards.finish()

    # -- bookkeeping -------------------------------------------------------
    def _once(self, obj: Any, tag: Any = None) -> bool:
        """True the first time (obj, tag) is expanded in this walk."""
        k = (id(obj), id(tag))
        if k in self._done:
            return False
        self._done[k] = (obj, tag)
        return True

    def record(self, key: tuple[str, ...], what: _Text, kind: str, token: Any,
               value: Any, read: _In | Callable[[], Any] | None = None) -> _Entry:
        self.guard(read, value)
        entry = _Entry(key, what, kind, token)
        self._fill(entry, value)
        self.entries.append(entry)
        return entry

    def _fill(self, entry: _Entry, value: Any) -> None:
        if self.capture:
            token = entry.token  # reuse an array's digest rather than hashing twice
            digest = token[4] if isinstance(token, tuple) and token[:1] == ("ndarray",) else None
            try:
                entry.text = _short(value, digest=digest)
            except Exception:
                entry.text = f"<{type(value).__name__} object>"
        else:
            entry.value = value

    def visit(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
              names: tuple[str, ...], kind: str = "dep",
              read: _In | Callable[[], Any] | None = None) -> Any:
        """Record `value` at `key`, expand what it reaches, return its token.

        `read` reads the same place again (for the guards); None where the place cannot be
        rebound (the origin, a bound method's function, an element of a guarded container).
        """
        self.guard(read, value)
        entry = _Entry(key, what, kind)
        self.entries.append(entry)  # before the children, so parents come first
        try:
            entry.token = self._token(value, key, what, trail, names)
        except Exception:  # an object that resists inspection: never trusted
            entry.token = _Unverifiable()
            self.unverifiable()
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
            self.unverifiable()
            return _Unverifiable()
        self._depth += 1
        try:
            return self._compound_token(value, key, what, trail, names)
        finally:
            self._depth -= 1

    def _compound_token(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                        names: tuple[str, ...]) -> Any:
        if isinstance(value, np.ndarray):
            return ("ndarray", _Ident(value, self.capture), value.dtype, value.shape,
                    self._digest(value))
        if isinstance(value, np.generic):
            return (type(value), value.tobytes())
        if isinstance(value, np.dtype):
            return (np.dtype, value)
        if isinstance(value, jax.Array):  # immutable: identity suffices
            return _Ident(value, self.capture)
        if isinstance(value, _CONTAINERS):
            return self._container_token(value, key, what, trail, names)
        cls = type(value)
        if cls.__flags__ & _HEAPTYPE and not isinstance(value, (type, types.ModuleType)):
            # An instance of a Python class can be given another class, which changes how it
            # is walked (classes and modules are walked the same whatever their metaclass).
            held = _holder(value)
            self.guard(lambda: type(held()), cls)
        self._expand(value, key, what, trail, names)
        if isinstance(value, types.MethodType):  # a fresh object per attribute access
            return ("method", _Ident(value.__func__, self.capture),
                    _Ident(value.__self__, self.capture))
        return _Ident(value, self.capture)

    def _digest(self, arr: np.ndarray) -> str:
        known = self._memo.get(id(arr))
        if known is not None and known[0] is arr:
            return known[1]
        digest = _array_digest(arr)
        self._memo[id(arr)] = (arr, digest)  # holds arr: its id cannot be reused meanwhile
        return digest

    def _element(self, value: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                 names: tuple[str, ...]) -> Any:
        # Plain data is folded into the container's token; anything that can
        # be walked gets its own entry so its insides are reported precisely.
        if isinstance(value,
                      _SCALARS + _CONTAINERS + (np.ndarray, np.generic, np.dtype, jax.Array)):
            return self._token(value, key, what, trail, names)
        return self.visit(value, key, what, trail, names)

    def _container_token(self, value: Any, key: tuple[str, ...], what: _Text,
                         trail: tuple[str, ...], names: tuple[str, ...]) -> Any:
        if id(value) in self._active:
            return ("<cycle>", type(value))
        self._active.add(id(value))
        try:
            if isinstance(value, dict):
                items = []
                for i, (k, v) in enumerate(list(value.items())):
                    short = isinstance(k, (str, int)) and len(repr(k)) < 40
                    label = f"[{k!r}]" if short else f"[#{i}]"
                    k_tok = self._element(k, key + (label + ".key",),
                                          _What(f"key {label} of ", what), trail, names)
                    v_tok = self._element(v, key + (label,), _What(f"item {label} of ", what),
                                          trail, names)
                    items.append((k_tok, v_tok))
                return (type(value), tuple(items))
            elems = [self._element(v, key + (f"[{i}]",), _What(f"item [{i}] of ", what), trail,
                                   names)
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
                self.visit(value.__func__, key + ("__func__",), _What("function of ", what), trail,
                           names)
                self.visit(value.__self__, key + ("__self__",), _What("object bound to ", what),
                           trail, names)
        elif isinstance(value, (functools.partial, functools.partialmethod)):
            if self._once(value):
                # Read again through the object: `partial.__setstate__` and a partialmethod's
                # attributes can rebind them.
                held = _holder(value)
                for attr, label in (("func", "function of "), ("args", "arguments of "),
                                    ("keywords", "keyword arguments of ")):
                    self.visit(getattr(value, attr), key + (attr,), _What(label, what), trail,
                               names, read=lambda a=attr: getattr(held(), a))
        elif isinstance(value, (staticmethod, classmethod)):
            held = _holder(value)  # calling __init__ again rebinds __func__
            self.visit(value.__func__, key + ("__func__",), _What("function of ", what), trail,
                       names, read=lambda: held().__func__)
        elif isinstance(value, property):
            held = _holder(value)
            for part in ("fget", "fset", "fdel"):
                self.visit(getattr(value, part), key + (part,), _What(f"{part} of ", what), trail,
                           names, read=lambda a=part: getattr(held(), a))
        elif isinstance(value, functools.cached_property):
            held = _holder(value)
            self.visit(value.func, key + ("func",), _What("function of ", what), trail, names,
                       read=lambda: held().func)
        elif isinstance(value, types.ModuleType):
            self._module_attrs(value, key, what, trail, names)
        elif isinstance(value, type):
            self._class(value, key, what, trail, names)
        elif isinstance(value, (jax.custom_jvp, jax.custom_vjp)):
            # The rules live in the instance __dict__ (jvp appears with defjvp,
            # fwd/bwd with defvjp).  Only these fields: update_wrapper also
            # copies the wrapped object's __dict__ there (e.g. jit internals).
            if self._once(value):
                fields = _instance_dict(value)
                source, namespace = _dict_of(_holder(value))
                for name in _CUSTOM_RULE_FIELDS:
                    read = _In(source, namespace, name)
                    if name in fields:
                        self.visit(fields[name], key + ("field", name),
                                   _What(f"field '{name}' of ", what), trail, names, read=read)
                    else:
                        self.guard(read, _ABSENT)
        else:
            self._object(value, key, what, trail, names)

    def walk_function(self, fn: types.FunctionType, key: tuple[str, ...],
                      trail: tuple[str, ...]) -> None:
        """Code, globals, builtins, cells, defaults and attributes of a user function."""
        trail = trail + (fn.__qualname__,)
        via = " -> ".join(trail)
        code = fn.__code__
        names = _code_names(code)
        held = _holder(fn)
        self.record(key + ("__code__",), f"code of {via}", "dep", _Ident(code, self.capture), code,
                    read=lambda: held().__code__)
        namespace = fn.__globals__  # read-only attributes, like __builtins__ and __closure__
        module = namespace.get("__name__", "<namespace>")
        builtin_ns = _builtins_of(fn)
        for name in names:
            gkey = key + ("global", name)
            # Reads go through the weakly held function (never the namespace itself): a guard
            # must not keep a notebook's namespace, and the wrapped functions in it, alive.
            read = _In(id(namespace), lambda: held().__globals__, name)
            if name in namespace:
                self.visit(namespace[name], gkey,
                           f"global '{name}' of module '{module}' (read by {via})", trail, names,
                           read=read)
                continue
            # Recorded so that a global defined later (shadowing a builtin,
            # or satisfying a NameError-guarded path) is seen as a change.
            self.record(gkey, f"global '{name}' of module '{module}' (read by {via})", "absent",
                        _ABSENT, _ABSENT, read=read)
            read_builtin = _In(id(builtin_ns), lambda: _builtins_of(held()), name)
            if name in builtin_ns:
                self.visit(builtin_ns[name], key + ("builtin", name),
                           f"builtin '{name}' (read by {via})", trail, names, kind="builtin",
                           read=read_builtin)
            else:
                self.guard(read_builtin, _ABSENT)
        for i, (var, cell) in enumerate(zip(code.co_freevars, fn.__closure__ or (), strict=True)):
            self.visit(_cell_contents(cell), key + ("cell", var),
                       f"closure variable '{var}' of {via}", trail, names,
                       read=lambda i=i: _cell_contents(held().__closure__[i]))
        self.visit(fn.__defaults__, key + ("__defaults__",), f"default arguments of {via}", trail,
                   names, read=lambda: held().__defaults__)
        self.visit(fn.__kwdefaults__, key + ("__kwdefaults__",), f"keyword defaults of {via}",
                   trail, names, read=lambda: held().__kwdefaults__)
        attrs = list(fn.__dict__.items())
        self.guard(lambda: tuple(held().__dict__), None,
                   check=_equals(tuple(k for k, _ in attrs)))
        source, fn_dict = _dict_of(held)
        for attr, value in attrs:
            if attr not in _BORING_FUNCTION_ATTRS:
                self.visit(value, key + ("attr", attr), f"attribute '{attr}' of {via}", trail,
                           names, read=_In(source, fn_dict, attr))

    def _library_function(self, fn: types.FunctionType, key: tuple[str, ...], what: _Text,
                          trail: tuple[str, ...], names: tuple[str, ...]) -> None:
        # Not walked, but transformations (jax.vmap, jax.grad, decorators) keep
        # the user function in __wrapped__ or a closure cell: follow those.
        held = _holder(fn)
        self.guard(lambda: held().__code__, fn.__code__)  # which code decides user vs library
        wrapped = fn.__dict__.get("__wrapped__")
        read_wrapped = _In(*_dict_of(held), "__wrapped__")
        if wrapped is not None:
            self.visit(wrapped, key + ("__wrapped__",), _What("function wrapped by ", what), trail,
                       names, read=read_wrapped)
        else:
            self.guard(read_wrapped, _ABSENT, check=_is_absent_or_none)
        for i, (var, cell) in enumerate(zip(fn.__code__.co_freevars, fn.__closure__ or (),
                                            strict=True)):
            content = _cell_contents(cell)
            read = (lambda i=i: _cell_contents(held().__closure__[i]))
            if content is not _EMPTY_CELL and content is not wrapped and _followed(content):
                self.visit(content, key + ("cell", var),
                           _What(f"closure variable '{var}' of ", what), trail, names, read=read)
            else:
                # Not followed: only whether it would be (a library's cache in a cell may change
                # at every call without this being a change).
                self.guard(read, content, check=(
                    lambda current, w=wrapped: current is _EMPTY_CELL or current is w
                    or not _followed(current)))

    def _module_attrs(self, module: types.ModuleType, key: tuple[str, ...], what: _Text,
                      trail: tuple[str, ...], names: tuple[str, ...]) -> None:
        # `m.attr` patterns: every co_name of the reader that the module defines.
        if not self._once(module, names):
            return
        namespace = _instance_dict(module)
        source, reader = _dict_of(_holder(module))
        for name in names:
            read = _In(source, reader, name)
            if name in namespace:
                self.visit(namespace[name], key + ("attr", name),
                           _What(f"attribute '{name}' of ", what), trail, names, read=read)
            else:
                self.guard(read, _ABSENT)

    def _class(self, cls: type, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
               names: tuple[str, ...]) -> None:
        user = _is_user_class(cls)
        held = _holder(cls)
        if not user:
            if self._once(cls, names):
                self.guard(lambda: _is_user_class(_live(held())), user, check=_equals(user))
                self._named_class_attrs(cls, key, what, trail, names)
            return
        if not self._once(cls):
            return
        self.guard(lambda: _is_user_class(_live(held())), user, check=_equals(user))
        # Reassigning __bases__ changes what every attribute lookup resolves to.
        self.record(key + ("__mro__",), _What("base classes of ", what), "dep",
                    tuple(_Ident(k, self.capture) for k in cls.__mro__), cls.__mro__,
                    read=lambda: held().__mro__)
        for klass in cls.__mro__:
            if klass is object:
                continue
            k_held = _holder(klass)
            if klass is not cls:
                k_user = _is_user_class(klass)
                self.guard(lambda k=k_held: _is_user_class(_live(k())), k_user,
                           check=_equals(k_user))
                if not k_user:
                    continue  # library bases: their attributes named by the reader, below
            attrs = list(klass.__dict__.items())
            self.guard(lambda k=k_held: tuple(k().__dict__), None,
                       check=_equals(tuple(name for name, _ in attrs)))
            for name, attr in attrs:
                if name not in _BORING_CLASS_ATTRS:
                    self.visit(attr, key + (f"class {klass.__qualname__}", name),
                               _What(f"attribute '{name}' of class '{klass.__qualname__}' (", what,
                                     ")"),
                               trail, names,
                               read=_In(("class", id(klass)), lambda k=k_held: k().__dict__, name))
        self._named_class_attrs(cls, key, what, trail, names)

    def _named_class_attrs(self, cls: type, key: tuple[str, ...], what: _Text,
                           trail: tuple[str, ...], names: tuple[str, ...]) -> None:
        """Attributes the reader names, resolved through the MRO (library classes)."""
        held = _holder(cls)
        for name in names:
            found = _resolve(cls, name)
            # One guard per name: where the lookup ends now (class, attribute, user or not).
            self.guard(lambda n=name: _resolve(held(), n), found, check=_same_resolution(found))
            if found is _ABSENT:
                continue
            klass, attr, user = found
            if user:
                continue  # already recorded wholesale
            self.visit(attr, key + ("resolve", name),
                       _What(f"attribute '{name}' of class '{cls.__qualname__}' (", what, ")"),
                       trail, names)

    def _object(self, obj: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                names: tuple[str, ...]) -> None:
        if isinstance(obj, (types.BuiltinFunctionType, types.WrapperDescriptorType,
                            types.MethodDescriptorType, types.GetSetDescriptorType,
                            types.MemberDescriptorType)):
            return  # C-level callables and slots: nothing behind them to walk
        cls = type(obj)  # guarded by `_compound_token` where it could be reassigned
        user = _is_user_class(cls)
        c_held = _holder(cls)
        if user:
            if self._once(obj):
                self.guard(lambda: _is_user_class(_live(c_held())), user, check=_equals(user))
                self.visit(cls, key + ("__class__",), _What("class of ", what), trail, names)
                self._fields(obj, key, what, trail, names)
            return
        # Library object: only what the reader can name, plus __wrapped__ (jax.jit).
        if not self._once(obj, names):
            return
        self.guard(lambda: _is_user_class(_live(c_held())), user, check=_equals(user))
        self._named_class_attrs(cls, key, what, trail, names)
        fields = _instance_dict(obj)
        source, reader = _dict_of(_holder(obj))
        for name in names:
            read = _In(source, reader, name)
            if name in fields:
                self.visit(fields[name], key + ("field", name), _What(f"field '{name}' of ", what),
                           trail, names, read=read)
            else:
                self.guard(read, _ABSENT)
        wrapped = fields.get("__wrapped__")
        if "__wrapped__" not in names:
            read = _In(source, reader, "__wrapped__")
            if wrapped is not None:
                self.visit(wrapped, key + ("__wrapped__",), _What("function wrapped by ", what),
                           trail, names, read=read)
            else:
                self.guard(read, _ABSENT, check=_is_absent_or_none)

    def _fields(self, obj: Any, key: tuple[str, ...], what: _Text, trail: tuple[str, ...],
                names: tuple[str, ...]) -> None:
        """Instance __dict__ and __slots__ of an object, each field recorded."""
        held = _holder(obj)
        fields = list(_instance_dict(obj).items())
        self.guard(lambda: tuple(_instance_dict(_live(held()))), None,
                   check=_equals(tuple(name for name, _ in fields)))
        source, reader = _dict_of(held)
        for name, value in fields:
            self.visit(value, key + ("field", name), _What(f"field '{name}' of ", what), trail,
                       names, read=_In(source, reader, name))
        for klass in type(obj).__mro__:
            k_held = _holder(klass)
            slots = klass.__dict__.get("__slots__", ())
            self.guard(lambda k=k_held: k().__dict__.get("__slots__", ()), slots)
            for name in [slots] if isinstance(slots, str) else slots:
                descriptor = klass.__dict__.get(name)
                self.guard(lambda k=k_held, n=name: k().__dict__.get(n), descriptor)
                if name in ("__dict__", "__weakref__") or not hasattr(descriptor, "__get__"):
                    continue
                self.visit(_slot_value(descriptor, obj, klass),
                           key + ("slot", klass.__qualname__, name),
                           _What(f"slot '{name}' of ", what), trail, names,
                           read=lambda d=descriptor, k=k_held: _slot_value(d, _live(held()), k()))

    # -- entry point ---------------------------------------------------------
    def walk(self, origin: Any) -> None:
        config = jax_trace_config()
        values = jax_trace_config_values()
        self.guard(jax_trace_config_values, values, check=_equals(values))
        self.record(("jax config",), "JAX configuration", "config", config, config)
        self.visit(origin, ("origin",), "traced callable", (), ())


# ---------------------------------------------------------------------------
# The record

def _same(old: Any, new: Any) -> bool:
    try:
        return bool(old == new)
    except Exception:  # exotic __eq__ (e.g. in a config value): assume changed
        return False


def _config_diff(old: tuple, new: tuple) -> tuple[str, str]:
    """Name the differing configuration flags (`jax_trace_config()` is a tuple of pairs)."""
    old_flags, new_flags = dict(old), dict(new)
    names = [n for n in {**old_flags, **new_flags}
             if not _same(old_flags.get(n, _EMPTY_CELL), new_flags.get(n, _EMPTY_CELL))]
    return (", ".join(f"{n}={_short(old_flags.get(n))}" for n in names),
            ", ".join(f"{n}={_short(new_flags.get(n))}" for n in names))


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

    def __init__(self, origin_ref: Callable[[], Any], origin_text: str,
                 entries: list[_Entry], guards: _Guards | None = None,
                 verifiable: bool = True) -> None:
        self._origin_ref = origin_ref
        self._origin_text = origin_text
        self._entries = entries
        self._by_key = {e.key: e for e in entries}
        self._guards = guards  # see "Guards"; None: walk on every check
        # False when a value could not be inspected: every check then reports a change.
        self.verifiable = verifiable

    @classmethod
    def capture(cls, fun: Any, *, strong: bool = False) -> DependencyRecord:
        """Snapshot everything `fun` can reach that can change a trace."""
        walker = _Walker(capture=True, guards=True)
        walker.walk(fun)
        ref: Callable[[], Any] | None = None
        if not strong:
            try:
                ref = (weakref.WeakMethod(fun) if isinstance(fun, types.MethodType)
                       else weakref.ref(fun))
            except TypeError:
                pass
        if ref is None:
            ref = lambda: fun  # noqa: E731 - a strong reference with the same interface
        return cls(ref, _short(fun), walker.entries, walker.finished_guards(), walker.verifiable)

    def _guards_hold(self) -> bool:
        """True when every guard holds: the record holds (False: walk to know)."""
        guards = self._guards
        return guards is not None and guards.hold()

    def changes(self, *, memo: dict | None = None) -> list[Change]:
        """What differs from the snapshot; [] when the record still holds.

        `memo`: pass one fresh dict to the `changes()` calls of several records
        made at the same moment (one `advance()`), so that a NumPy array they
        share is hashed once.  Do not reuse it later: arrays may change.
        """
        origin = self._origin_ref()
        if origin is None:
            return [Change(f"traced callable {self._origin_text}", self._origin_text,
                           "<garbage collected>", None)]
        if self._guards_hold():
            if _VERIFY_GUARDS:
                found = self._walk_changes(origin, memo)[0]
                # Another thread may have changed something between the two checks: then the
                # guards fail now too, and the change is real.
                assert not found or not self._guards_hold(), (
                    f"jaxworld internal error: the guards of {self!r} held but a walk found "
                    f"changes: {found}")
                return found
            return []
        out, guards = self._walk_changes(origin, memo)
        if not out:
            self._guards = guards  # e.g. an equal value bound anew: the guards follow it now
        return out

    def _walk_changes(self, origin: Any,
                      memo: dict | None) -> tuple[list[Change], _Guards | None]:
        walker = _Walker(capture=False, memo=memo, guards=True)
        walker.walk(origin)
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
            old_text = before.text if before is not None else "<not a dependency before>"
            try:
                new_text, where = _short(entry.value), _where(entry.value)
            except Exception:
                new_text, where = f"<{type(entry.value).__name__} object>", None
            out.append(Change(str(entry.what), old_text or "?", new_text, where))
        for entry in self._entries:  # dependencies the new walk no longer reaches
            if (entry.key not in seen and not _is_below(entry.key, reported)
                    and entry.key not in reported):
                reported.add(entry.key)
                out.append(Change(str(entry.what), entry.text or "?", "<no longer reached>", None))
        return out, walker.finished_guards()

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
            elif entry.key[-1] in ("__defaults__", "__kwdefaults__") and entry.token == _NONE_TOKEN:
                continue  # "no defaults" is still checked, just not worth a line
            else:
                lines.append(f"{entry.what} = {entry.text}")
        if builtin_names:
            lines.append("builtins: " + ", ".join(dict.fromkeys(builtin_names)))
        if absent:
            lines.append("names watched in case they become globals: "
                         + ", ".join(dict.fromkeys(absent)))
        return lines

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<DependencyRecord of {self._origin_text}: {len(self)} entries>"
